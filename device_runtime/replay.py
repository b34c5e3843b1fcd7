"""The bundle's replay set: server features the device mixes into training, so unseen labels keep their place.

A user's data rarely covers every label. Trained on two topics alone, a head
forgets the other three; a few server examples of every label, replayed beside
the user's, hold them (see docs/device.md, "Replay"). The set ships as
``head/replay.npz`` (``features`` float32, ``labels`` int64): read here with
numpy alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.errors import BundleError


@dataclasses.dataclass(frozen=True)
class ReplaySet:
    """Server examples as the head sees them: input features and shipped-label indices."""

    features: np.ndarray  # (n, head input size), float32
    labels: np.ndarray  # (n,), int64, indices into the bundle's labels

    def __len__(self) -> int:
        return len(self.labels)


def load_replay(bundle: Bundle) -> ReplaySet | None:
    """The bundle's replay set, or None where it ships none (exported with replay_per_class=0, or before replay).

    Raises:
        BundleError: the file does not hold what the manifest says.
    """
    return _load_rows(bundle, layout.REPLAY)


def load_guard(bundle: Bundle) -> ReplaySet | None:
    """The bundle's guard set (held-out server rows no head trained on), or None where it ships none.

    Raises:
        BundleError: the file does not hold what the manifest says.
    """
    return _load_rows(bundle, layout.GUARD)


def _load_rows(bundle: Bundle, name: str) -> ReplaySet | None:
    if name not in bundle.manifest.files:
        return None
    head = bundle.manifest.head
    data = bundle.read_arrays(name, ("features", "labels"))
    try:
        features, labels = data["features"].astype(np.float32), data["labels"].astype(np.int64)
    except (TypeError, ValueError) as e:
        raise BundleError(f"{name} is not a set of server rows ({e}); re-export the bundle.") from e
    n_labels = len(bundle.manifest.labels)
    if features.ndim != 2 or features.shape[1] != head.in_features or len(labels) != len(features):
        raise BundleError(
            f"{name} holds features of shape {features.shape} and {len(labels)} labels; the head reads "
            f"(n, {head.in_features}) with one label per row. Re-export the bundle."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= n_labels):
        raise BundleError(f"{name} has label indices outside the bundle's {n_labels} labels; re-export the bundle.")
    return ReplaySet(features, labels)


def replay_rows(replay: ReplaySet, ratio: float, user_targets: np.ndarray, seed: int) -> np.ndarray:
    """Which replay rows join a run: every replay label topped up to ``ratio`` times the user's mean rows per label.

    A label the user gave ``c`` examples of gets ``round(ratio * mean) - c``
    replay rows (none if that is negative), drawn without repeats until its
    replay rows run out. With ratio 1 the run trains on as many rows of every
    label: no label's prior shrinks because the user never shows it, and a
    user who covers every label evenly trains on their own rows alone.
    """
    rng = np.random.default_rng(seed)
    user_counts = np.bincount(user_targets) if len(user_targets) else np.zeros(0, np.int64)
    target = round(ratio * len(user_targets) / max(np.count_nonzero(user_counts), 1))
    chosen = []
    for label in np.unique(replay.labels):
        have = int(user_counts[label]) if label < len(user_counts) else 0
        members = rng.permutation(np.flatnonzero(replay.labels == label))
        if target > have:
            chosen.append(np.resize(members, target - have))
    return np.concatenate(chosen).astype(np.int64) if chosen else np.arange(0, dtype=np.int64)


class StackedRows:
    """The user's feature rows (possibly a disk-backed memmap) followed by in-memory replay rows, as one array.

    Only the rows a batch asks for are read, so the user's features never
    have to fit in memory for replay to join them.
    """

    def __init__(self, first: np.ndarray, second: np.ndarray) -> None:
        self._first, self._second = first, second
        self.shape = (len(first) + len(second), first.shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index)
        out = np.empty((len(index), self.shape[1]), dtype=np.float32)
        own = index < len(self._first)
        if own.any():
            out[own] = self._first[index[own]]
        out[~own] = self._second[index[~own] - len(self._first)]
        return out
