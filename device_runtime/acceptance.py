"""The user's validation split, which the guard (:mod:`device_runtime.guard`) judges on beside the bundle's guard rows."""

from __future__ import annotations

import numpy as np


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
