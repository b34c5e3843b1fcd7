"""Per device, the better of the fleet's head and its own: global, personal, a mix, or the head it had.

After a fleet run a device holds the global head and its own few examples. A head personalized on them
wins under label skew and loses near iid (docs/fleet.md), and a device cannot tell which case it is in
without held-out rows. :func:`choose_head` rotates its examples through ``folds`` held-out parts: for
each part it trains a personal head from the global one on the other parts, and scores every candidate
(the global head, the personal one, their mixes, the head the device had before) on the part it held
out, with the device's guard metric. Every example is held out once, so the judgment rests on all of
them rather than on the 1 to 4 rows a single validation split keeps. The candidate with the best
held-out score is kept; ties go to the global head, which rests on the most data.

Only :class:`~device_runtime.Personalizer`'s public API is used (``set_head``, ``partial_fit`` with
``accept="always"``, ``evaluate``, ``head_parameters``), so a rewritten guard drops in.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any

import numpy as np

from device_runtime import Personalizer
from edgeft.errors import ConfigError
from fleet.statistics import linear_head_size

Head = dict[str, np.ndarray]
TIE = 1e-6  # held-out scores this close are equal: the earlier candidate (the global head first) is kept


class Kept(str, enum.Enum):
    """Which head a device keeps."""

    GLOBAL = "global"  # the fleet's head as it came
    MIX = "mix"  # (1 - weight) * global + weight * personal, parameter by parameter (linear heads only)
    PERSONAL = "personal"  # the global head trained further on the device's own examples
    PREVIOUS = "previous"  # the head the device had before the fleet's (its shipped one, say)


@dataclasses.dataclass(frozen=True)
class ChoiceConfig:
    """How a device chooses between the fleet's head and its own."""

    folds: int = 4  # held-out parts; a device of 4 to 18 examples holds out 1 to 5 at a time
    mixes: tuple[float, ...] = (0.5,)  # the personal head's weight in each mix candidate
    epochs: int | None = None  # personal training's epochs; None: the bundle's
    lr: float | None = None  # its learning rate; None: the bundle's
    seed: int = 0  # which examples fall in which part

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"folds must be >= 2 (one part held out, the others trained on), got {self.folds}")
        if any(not 0 < w < 1 for w in self.mixes):
            raise ConfigError(f"every mix weight must be in (0, 1), got {self.mixes}")


@dataclasses.dataclass(frozen=True)
class Choice:
    """What a device kept, and why."""

    kept: Kept
    weight: float  # the personal head's share in the kept head: 0 global (or previous), 1 personal
    scores: dict[str, dict[str, float]]  # per candidate: held-out loss and accuracy over every part
    metric: str  # the guard's metric the candidates were compared on
    reason: str
    head: Head  # the kept head's parameters (now current on the personalizer)


def choose_head(
    personalizer: Personalizer,
    X: Sequence[Any],
    y: Sequence[str],
    global_head: Head,
    previous: Head | None = None,
    config: ChoiceConfig = ChoiceConfig(),
) -> Choice:
    """Keep the global head, a personal one, a mix, or ``previous``: the best on the device's own held-out rows.

    Args:
        personalizer: the device's personalizer (its guard metric, ``config.metric``, decides).
        X, y: the device's labelled examples.
        global_head: the fleet's head.
        previous: the head the device had before (a candidate too); None: not a candidate.
        config: parts, mixes and personal training settings.

    Returns:
        The :class:`Choice`; its head is made current on ``personalizer`` (as a new version).

    Raises:
        DataError: as ``partial_fit`` raises for bad examples or labels.
    """
    X, y = list(X), list(y)
    mixes = config.mixes if _is_linear(global_head) else ()
    names = ["global", *(f"mix {w:g}" for w in mixes), "personal", *(["previous"] if previous is not None else [])]
    parts = min(config.folds, len(X))
    if parts < 2:
        personalizer.set_head(global_head, source="fleet choice: global")
        return Choice(Kept.GLOBAL, 0.0, {}, "", "one example: nothing to hold out, so the fleet's head", global_head)
    part = np.random.default_rng(config.seed).permutation(len(X)) % parts
    totals = {name: np.zeros(2) for name in names}  # summed loss and correct answers over held-out rows
    for k in range(parts):
        train, held = np.flatnonzero(part != k), np.flatnonzero(part == k)
        personal = _personal(personalizer, global_head, [X[i] for i in train], [y[i] for i in train], config)
        candidates = _candidates(global_head, personal, mixes, previous)
        for name, head in candidates.items():
            personalizer.set_head(head, source="fleet choice: held-out score")
            report = personalizer.evaluate([X[i] for i in held], [y[i] for i in held])
            totals[name] += len(held) * np.array([report["loss"], report["accuracy"]])
    scores = {name: {"loss": float(t[0] / len(X)), "accuracy": float(t[1] / len(X))} for name, t in totals.items()}
    metric = personalizer.config.metric.value
    best = _best(names, scores, metric)
    head = _candidates(global_head, _personal(personalizer, global_head, X, y, config), mixes, previous)[best]
    personalizer.set_head(head, source=f"fleet choice: {best}")
    kept, weight = _kind(best)
    reason = f"{best} had the best held-out {metric} over {parts} parts of {len(X)} examples" + (
        "" if best == "global" else f" ({scores[best][metric]:.3f} against the global head's {scores['global'][metric]:.3f})"
    )
    return Choice(kept, weight, scores, metric, reason, head)


def _best(names: list[str], scores: dict[str, dict[str, float]], metric: str) -> str:
    """The first candidate, in ``names``' order (global first), whose held-out score is the best up to rounding."""
    sign = -1.0 if metric == "accuracy" else 1.0  # accuracy: higher is better; loss: lower
    best = min(sign * scores[n][metric] for n in names)
    return next(n for n in names if sign * scores[n][metric] <= best + TIE)


def _personal(personalizer: Personalizer, global_head: Head, X: list, y: list[str], config: ChoiceConfig) -> Head:
    """The global head trained on ``X, y`` (every row: the held-out part judges it, not the guard)."""
    personalizer.set_head(global_head, source="fleet choice: personal start")
    personalizer.partial_fit(X, y, accept="always", validation_fraction=0.0, epochs=config.epochs, lr=config.lr)
    return personalizer.head_parameters()


def _candidates(global_head: Head, personal: Head, mixes: Sequence[float], previous: Head | None) -> dict[str, Head]:
    out = {"global": global_head}
    for w in mixes:
        out[f"mix {w:g}"] = {k: ((1 - w) * global_head[k] + w * personal[k]).astype(np.float32) for k in global_head}
    out["personal"] = personal
    if previous is not None:
        out["previous"] = previous
    return out


def _kind(name: str) -> tuple[Kept, float]:
    if name.startswith("mix "):
        return Kept.MIX, float(name.split()[1])
    return Kept(name), 1.0 if name == "personal" else 0.0


def _is_linear(head: Head) -> bool:
    try:
        linear_head_size(head)
    except ConfigError:
        return False
    return True
