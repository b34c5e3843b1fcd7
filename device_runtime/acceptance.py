"""The guard against shipping a regression: a validation split, and the accept/reject decision."""

from __future__ import annotations

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
    verdicts: dict[str, dict[str, Any]] | None = None,
) -> tuple[bool, str]:
    """Whether the new head replaces the current one, and why (one sentence for the report).

    Args:
        config: ``accept``, ``metric`` and ``max_label_loss`` come from here.
        stopped: why training stopped ("cancelled" never replaces the head).
        steps: optimizer steps taken (none: nothing to accept).
        new, current: both heads' scores on the same examples.
        on: which examples those were, for the reason.
        verdicts: :func:`label_verdicts` on the bundle's replay set; None where it ships none.
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
    if verdicts is None:
        return True, f"the new head is not worse: {versus}; {UNCHECKED}"
    if reason := forgotten(verdicts, config.max_label_loss):
        return False, f"{reason}; the current head is kept"
    return True, f"the new head is not worse: {versus}; it keeps every label of the replay set"


def label_verdicts(
    current: dict[int, float], new: dict[int, float], names: list[str], margin: float
) -> dict[str, dict[str, Any]]:
    """Per label of the replay set: both heads' recall, and whether the new head kept the label.

    Args:
        current, new: recall by label index, on the same replay rows.
        names: the labels, by index.
        margin: recall (0..1) a label may lose and still count as kept.
    """
    return {
        names[i]: {"current": current[i], "new": new[i], "kept": new[i] >= current[i] - margin - 1e-9}
        for i in sorted(current)
    }


def forgotten(verdicts: dict[str, dict[str, Any]], margin: float) -> str | None:
    """Why a head that lost labels of the replay set is refused (naming them and the figures), or None."""
    lost = [f"{name} {v['current']:.2f} -> {v['new']:.2f}" for name, v in verdicts.items() if not v["kept"]]
    if not lost:
        return None
    return (f"the new head forgets label(s) of the bundle's replay set, recall {', '.join(lost)} "
            f"(more than the {margin:.2f} allowed, max_label_loss)")
