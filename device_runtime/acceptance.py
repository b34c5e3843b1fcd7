"""The guard against shipping a regression: a validation split, and the accept/reject decision."""

from __future__ import annotations

from typing import Any

import numpy as np

from device_runtime.scoring import is_better
from edgeft.config import Accept, TrainConfig


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
    config: TrainConfig, stopped: str, steps: int, new: dict[str, Any], current: dict[str, Any], on: str
) -> tuple[bool, str]:
    """Whether the new head replaces the current one, and why (one sentence for the report).

    Args:
        config: ``accept`` and ``metric`` come from here.
        stopped: why training stopped ("cancelled" never replaces the head).
        steps: optimizer steps taken (none: nothing to accept).
        new, current: both heads' scores on the same examples.
        on: which examples those were, for the reason.
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
    return True, f"the new head is not worse: {versus}"
