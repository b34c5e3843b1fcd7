"""The model being served, swapped copy-on-write when a new head is accepted.

Predictions take a reference to the current :class:`Slot` and run on it under
that slot's own lock (an ORT training module is not documented thread-safe).
A personalization job trains a *separate* Personalizer, so serving never waits
for training; accepting its head is one reference swap under ``_swap``.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from device_runtime.personalizer import Personalizer
from device_runtime.service.errors import NotSupportedError
from device_runtime.service.settings import ServiceSettings
from device_runtime.service.store import ExampleStore
from device_runtime.state import STATE_FILE
from edgeft.bundle import Bundle

HEAD_VERSION = "head_version"


@dataclasses.dataclass(frozen=True)
class Slot:
    """One immutable pairing of a Personalizer with its head version and lock."""

    personalizer: Personalizer
    head_version: int
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class ServedModel:
    """The current head, its durable state folder, and the atomic swap between heads."""

    def __init__(self, settings: ServiceSettings, store: ExampleStore) -> None:
        self.settings = settings
        self.store = store
        self._swap = threading.Lock()
        self._slot = Slot(self._load(), int(store.get_meta(HEAD_VERSION, "0") or 0))

    @property
    def slot(self) -> Slot:
        return self._slot

    @property
    def bundle(self) -> Bundle:
        return self._slot.personalizer.bundle

    def predict_proba(self, inputs: list[Any]) -> tuple[np.ndarray, list[str], int]:
        """Probabilities from the current head: (proba, labels, head version)."""
        slot = self._slot
        with slot.lock:
            return slot.personalizer.predict_proba(inputs), slot.personalizer.labels, slot.head_version

    def fresh(self, *, continue_from_current: bool) -> Personalizer:
        """A separate Personalizer for a job to train: from the saved state, or the shipped head."""
        if continue_from_current and (self.settings.state_dir / STATE_FILE).is_file():
            return Personalizer.load(self.settings.state_dir, bundle=self.bundle)
        return Personalizer(self.bundle)

    def accept(self, candidate: Personalizer) -> int:
        """Save ``candidate`` durably, then make it the served head. Returns its head version."""
        with self._swap:
            candidate.save(self.settings.state_dir)
            version = self._slot.head_version + 1
            self.store.set_meta(HEAD_VERSION, str(version))
            self._slot = Slot(candidate, version)
            return version

    def rollback(self, to_version: int | None) -> None:
        """Roll the served head back with ``Personalizer.rollback``, where the runtime has it.

        Raises:
            NotSupportedError: this runtime's Personalizer has no ``rollback``.
        """
        slot = self._slot
        if not callable(getattr(slot.personalizer, "rollback", None)):
            raise NotSupportedError("This device runtime's Personalizer has no rollback(); update edgeft to roll heads back.")
        with self._swap, slot.lock:
            slot.personalizer.rollback(to_version)
            slot.personalizer.save(self.settings.state_dir)

    def drift_report(self) -> dict[str, Any]:
        """``Personalizer.drift_report()``, where the runtime has it.

        Raises:
            NotSupportedError: this runtime's Personalizer has no ``drift_report``.
        """
        slot = self._slot
        if not callable(getattr(slot.personalizer, "drift_report", None)):
            raise NotSupportedError("This device runtime's Personalizer has no drift_report(); update edgeft for drift reports.")
        with slot.lock:
            return slot.personalizer.drift_report()

    def _load(self) -> Personalizer:
        state_dir = self.settings.state_dir
        if (state_dir / STATE_FILE).is_file():
            model = self.settings.model
            bundle = None if (model / STATE_FILE).is_file() else model
            return Personalizer.load(state_dir, bundle=bundle)
        return Personalizer.load(self.settings.model)
