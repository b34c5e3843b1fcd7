"""The stratified validation split: what the guard (:mod:`device_runtime.guard`) judges on beside the bundle's guard rows,
and what the exporter holds out of the server data (:mod:`export.exporter`, :mod:`export.finetune`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def validation_split(labels: Sequence | np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices, stratified: ``fraction`` of each class (at least one) is held out.

    Args:
        labels: one label per example, of any sortable kind (class indices, names); classes are visited in
            sorted order, so the same labels and seed always give the same split.
        fraction: the share of each class to hold out; 0 holds out nothing.
        seed: which examples.

    Returns:
        The training and the validation indices, each sorted.

    A class with a single example stays in training.
    """
    labels = np.asarray(labels)
    if fraction == 0:
        return np.arange(len(labels)), np.arange(0)
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) >= 2:
            held.extend(rng.permutation(members)[: max(1, round(fraction * len(members)))])
    held = np.sort(np.asarray(held, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), held), held
