"""The model being served, swapped copy-on-write when a new head is accepted.

Predictions take a reference to the current :class:`Slot` and run on it under
that slot's own lock (an ORT training module is not documented thread-safe).
A personalization job trains a *separate* Personalizer, so serving never waits
for training; when the runtime's guard accepts the new head, taking it into
service is one reference swap under ``_swap``. Head versions are the
Personalizer's own (0 is the shipped head). The drift monitor (the window of
recent predictions) passes from the served head to the one replacing it, so
swaps and rollbacks keep it; :meth:`ServedModel.persist` saves it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
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


def load_served(settings: ServiceSettings, **kwargs: Any) -> Personalizer:
    """The Personalizer the service serves: the state saved in ``settings.state_dir`` if any, else ``settings.model``,
    its bundle under ``settings.trust`` (``$EDGEFT_TRUST`` if unset). ``edgeft serve`` calls it before the server
    starts, so that a refused bundle or a corrupt state is one typed error, not a failed startup.

    Raises:
        BundleError: the bundle is missing or altered, or (SignatureError) refused by the trust policy.
        StateError: the saved state is corrupt or belongs to another bundle.
    """
    kwargs.setdefault("runtime", RuntimeConfig(trust=settings.trust))
    if (settings.state_dir / STATE_FILE).is_file():
        model = settings.model
        return Personalizer.load(settings.state_dir, bundle=None if (model / STATE_FILE).is_file() else model, **kwargs)
    return Personalizer.load(settings.model, **kwargs)


class ServedModel:
    """The current head, its durable state folder, and the atomic swap between heads."""

    def __init__(
        self, settings: ServiceSettings, store: ExampleStore, on_drift: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_drift = on_drift  # every Personalizer made here gets it: alerts from whichever head serves
        self._swap = threading.Lock()
        self._slot = Slot(self.fresh())
        self._saved_observed = self._slot.personalizer.monitor_.observed

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
        return load_served(self.settings, **self._drift_kwargs())

    def accept(self, candidate: Personalizer) -> None:
        """Save ``candidate`` durably, then make it the served head."""
        with self._swap:
            self._keep_monitor(candidate)
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
            self._keep_monitor(candidate)
            candidate.rollback(target).save(self.settings.state_dir)
            self._slot = Slot(candidate)

    def persist(self) -> None:
        """Save the served state if predictions came since the last save (the window is part of it)."""
        with self._swap:
            slot = self._slot
            with slot.lock:
                if slot.personalizer.monitor_.observed != self._saved_observed:
                    slot.personalizer.save(self.settings.state_dir)
                    self._saved_observed = slot.personalizer.monitor_.observed

    def _keep_monitor(self, candidate: Personalizer) -> None:
        """The new head watches the same window: drift does not start over at a swap."""
        candidate.monitor_ = self._slot.personalizer.monitor_
        self._saved_observed = candidate.monitor_.observed

    def _drift_kwargs(self) -> dict[str, Any]:
        return {"drift": self.settings.drift, "on_drift": self.on_drift, "runtime": RuntimeConfig(trust=self.settings.trust)}

    def drift_report(self, threshold: float) -> dict[str, Any]:
        """``Personalizer.drift_report()`` over what the served model has seen."""
        slot = self._slot
        with slot.lock:
            return slot.personalizer.drift_report(threshold)
