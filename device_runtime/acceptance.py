"""The guard against shipping a regression: a validation split, and the accept/reject decision."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from device_runtime.scoring import is_better
from edgeft.config import Accept, TrainConfig

# What the report says where the bundle ships no replay set to check the other labels on.
UNCHECKED = "labels the user gave no examples of could not be checked (the bundle ships no replay set)"


def validation_split(targets: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices, stratified: ``fraction`` of each class (at least one) is held out.

    A class with a single example stays in training; with ``fraction`` 0 nothing is held out.
    """
    if fraction == 0:
        return np.arange(len(targets)), np.arange(0)
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        if len(members) >= 2:
            held.extend(rng.permutation(members)[: max(1, round(fraction * len(members)))])
    held = np.sort(np.asarray(held, dtype=np.int64))
    return np.setdiff1d(np.arange(len(targets)), held), held


def decide(
    config: TrainConfig,
    stopped: str,
    steps: int,
    new: dict[str, Any],
    current: dict[str, Any],
    on: str,
    replay: ReplayCheck | None = None,
) -> tuple[bool, str]:
    """Whether the new head replaces the current one, and why (one sentence for the report).

    Args:
        config: ``accept`` and ``metric`` come from here.
        stopped: why training stopped ("cancelled" never replaces the head).
        steps: optimizer steps taken (none: nothing to accept).
        new, current: both heads' scores on the same examples.
        on: which examples those were, for the reason.
        replay: :func:`check_replay` on the bundle's replay set; None where it ships none.
    """
    metric = config.metric.value
    if stopped == "cancelled":
        return False, "training was cancelled; the current head is kept"
    if steps == 0:
        return False, "no training step ran within the time budget; the current head is kept"
    versus = f"{metric} {new[metric]:.4f} (new) vs {current[metric]:.4f} (current) on {on}"
    if config.accept is Accept.ALWAYS:
        return True, f'accept="always": replaced the current head; {versus}'
    if is_better(config.metric, current[metric], new[metric]):
        return False, f"the new head is worse: {versus}; the current head is kept"
    if replay is None:
        return True, f"the new head is not worse: {versus}; {UNCHECKED}"
    if reason := replay.forgotten():
        return False, f"{reason}; the current head is kept"
    return True, f"the new head is not worse: {versus}; it keeps every label of the replay set"


@dataclasses.dataclass(frozen=True)
class ReplayCheck:
    """Both heads on the bundle's replay set: a verdict per label, and one for the set as a whole."""

    labels: dict[str, dict[str, Any]]  # label -> current, new (recall), lost, gained (rows), p, kept
    overall: dict[str, Any]  # the same over every row (accuracy instead of recall)
    margin: float
    level: float

    def forgotten(self) -> str | None:
        """Why a head that lost labels of the replay set is refused (naming them and the figures), or None."""
        lost = [f"{name} {_shown(v)}" for name, v in self.labels.items() if not v["kept"]]
        if not self.overall["kept"]:
            fell = [name for name, v in self.labels.items() if v["new"] < v["current"]]
            lost.append(f"all labels together {_shown(self.overall)}, down in {', '.join(fell)}")
        if not lost:
            return None
        beyond = f", and more than chance explains at forgetting_level {self.level}" if self.level < 1 else ""
        return (
            f"the new head forgets label(s) of the bundle's replay set, recall {', '.join(lost)} "
            f"(more than the {self.margin:.2f} allowed, max_label_loss{beyond})"
        )


def check_replay(
    targets: np.ndarray, current: np.ndarray, new: np.ndarray, names: list[str], margin: float, level: float
) -> ReplayCheck:
    """Compare the two heads' predictions on the replay rows, per label and over all of them.

    A label is lost where its recall drops by more than ``margin`` and the rows it
    lost outnumber the rows it gained by more than chance explains (McNemar's
    exact one-sided test on the rows the heads disagree on, p < ``level``).
    Replay sets are small, 4 to 32 rows a label, so one row is 3 to 25 points of
    recall: the margin alone refused heads that were better on held-out data
    (docs/device.md, the forgetting benchmark).
    """
    labels = {names[i]: _verdict(targets == i, targets, current, new, margin, level) for i in np.unique(targets)}
    return ReplayCheck(labels, _verdict(np.ones(len(targets), bool), targets, current, new, margin, level), margin, level)


def _verdict(
    rows: np.ndarray, targets: np.ndarray, current: np.ndarray, new: np.ndarray, margin: float, level: float
) -> dict[str, Any]:
    was, now = current[rows] == targets[rows], new[rows] == targets[rows]
    lost, gained = int(np.sum(was & ~now)), int(np.sum(~was & now))
    p = _sign_test(lost, gained)
    before, after = float(was.mean()), float(now.mean())
    return {
        "current": before,
        "new": after,
        "lost": lost,
        "gained": gained,
        "p": p,
        "kept": not (after < before - margin - 1e-9 and p < level),
    }


def _sign_test(lost: int, gained: int) -> float:
    """P(at least ``lost`` of the ``lost + gained`` disagreeing rows go against the new head, by chance alone)."""
    n = lost + gained
    return float(sum(math.comb(n, k) for k in range(lost, n + 1)) / 2**n)


def _shown(v: dict[str, Any]) -> str:
    return f"{v['current']:.2f} -> {v['new']:.2f} ({v['lost']} rows lost, {v['gained']} gained, p={v['p']:.3f})"
