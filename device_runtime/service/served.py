"""The model being served, swapped copy-on-write when a new head is accepted.

Predictions take a reference to the current :class:`Slot` and run on it under
that slot's own lock (an ORT training module is not documented thread-safe).
A personalization job trains a *separate* Personalizer, so serving never waits
for training; when the runtime's guard accepts the new head, taking it into
service is one reference swap under ``_swap``. Head versions are the
Personalizer's own (0 is the shipped head).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from device_runtime.personalizer import Personalizer
from device_runtime.service.errors import FieldError
from device_runtime.service.settings import ServiceSettings
from device_runtime.service.store import ExampleStore
from device_runtime.state import STATE_FILE
from edgeft.bundle import Bundle
from edgeft.config import RuntimeConfig


@dataclasses.dataclass(frozen=True)
class Slot:
    """One immutable pairing of a Personalizer with its lock."""

    personalizer: Personalizer
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def head_version(self) -> int:
        return self.personalizer.current_version


class ServedModel:
    """The current head, its durable state folder, and the atomic swap between heads."""

    def __init__(self, settings: ServiceSettings, store: ExampleStore) -> None:
        self.settings = settings
        self.store = store
        self._swap = threading.Lock()
        self._slot = Slot(self.fresh())

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

    def fresh(self) -> Personalizer:
        """A separate Personalizer with the saved versions (a job trains it; serving never waits)."""
        state_dir = self.settings.state_dir
        runtime = RuntimeConfig(trust=self.settings.trust)
        if (state_dir / STATE_FILE).is_file():
            model = self.settings.model
            return Personalizer.load(state_dir, bundle=None if (model / STATE_FILE).is_file() else model, runtime=runtime)
        return Personalizer.load(self.settings.model, runtime=runtime)

    def accept(self, candidate: Personalizer) -> None:
        """Save ``candidate`` durably, then make it the served head."""
        with self._swap:
            candidate.save(self.settings.state_dir)
            self._slot = Slot(candidate)

    def rollback(self, to_version: int | None) -> None:
        """Serve an earlier head version (default: the one before the current), saved before it is swapped in.

        Raises:
            FieldError: there is no such version.
        """
        with self._swap:
            candidate = self.fresh()
            known = [v["version"] for v in candidate.versions]
            target = to_version if to_version is not None else max((v for v in known if v < candidate.current_version), default=0)
            if target not in known:
                raise FieldError("to_version", f"there is no head version {target}; this device has versions {known}.")
            candidate.rollback(target).save(self.settings.state_dir)
            self._slot = Slot(candidate)

    def drift_report(self, threshold: float) -> dict[str, Any]:
        """``Personalizer.drift_report()`` over what the served model has seen."""
        slot = self._slot
        with slot.lock:
            return slot.personalizer.drift_report(threshold)
