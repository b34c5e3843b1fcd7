"""What one ``fit``/``partial_fit`` run did: one dataclass, the same in the API, the CLI and the service."""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class FitReport:
    """A training run's record: the guard's verdict and why, the scores it compared, how training went.

    A run interrupted while the backbone computed features (cancelled, out of time) has the same shape:
    ``accepted`` False, no scores, ``epochs`` and ``steps`` 0.
    """

    accepted: bool
    reason: str  # one sentence: what shipped (or why nothing did), with the figures
    version: int  # the head version in use after the run
    stopped: str  # "completed", "early_stopping", "time_budget" or "cancelled"
    examples: int  # the user's examples given to the run
    engine: str
    provider: str
    feature_seconds: float
    train_seconds: float
    epochs: int = 0
    steps: int = 0
    best_epoch: int | None = None  # with early stopping: the epoch whose weights were kept
    metric: str | None = None  # what the guard compared: "loss", "accuracy" or "macro_f1"
    new: dict[str, float] | None = None  # loss, accuracy, macro_f1 of the head judged (the one shipped, if any)
    current: dict[str, float] | None = None  # the same for the current head, on the same rows
    validated_on: str = ""  # the rows the guard judged on, described
    train_examples: int = 0
    validation_examples: int = 0
    final_loss: float | None = None  # mean training loss of the last epoch
    replay_examples: int = 0  # the bundle's server rows mixed into training
    guard_examples: int = 0  # the bundle's held-out server rows the guard judged on (0: labels the user left out unchecked)
    # The input-shift check (device_runtime.input_shift.ShiftCheck): where the user's inputs differ from the server's,
    # the guard rows of the user's labels were set aside. None: the bundle ships no guard rows.
    shift: dict[str, Any] | None = None
    l2sp: float = 0.0
    mix_weight: float | None = None  # share of the new head in the head shipped (1: the raw new head)
    refit: bool = False  # the head shipped was trained again on every user row, the validation split too
    verdicts: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # per source and label (guard.Verdict)
    # Every head weighed, the current one (weight 0) first: weight, loss, accuracy, kept, loss by source.
    family: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    added_labels: list[str] = dataclasses.field(default_factory=list)  # labels this run claimed and kept
    config: dict[str, Any] = dataclasses.field(default_factory=dict)  # the TrainConfig the run used

    @property
    def labels_checked(self) -> bool:
        """Whether the guard had held-out rows of every bundle label the user left out (under an input shift, the user's
        own validation rows judge the labels they gave)."""
        return self.guard_examples > 0 or bool(self.shift and self.shift["shifted"])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (non-finite numbers become None), as the CLI prints and the service returns it."""
        return _finite({**dataclasses.asdict(self), "labels_checked": self.labels_checked})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitReport | None:
        """The report :meth:`to_dict` wrote; None for a state saved before any run, or by an edgeft whose report
        had another shape (its runs' records are not carried over)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in fields})
        except TypeError:
            return None


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
