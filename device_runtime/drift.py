"""Has local data moved away from what the bundle was exported on?

The exporter records a reference (mean and spread of the backbone's features,
mean prediction confidence) on its server data. The device keeps the same
statistics, running, over every example it sees; :func:`compare` scores the
difference.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgeft.config import DRIFT_THRESHOLD as DEFAULT_THRESHOLD  # the default threshold on the shift score (compare)


@dataclasses.dataclass
class RunningStats:
    """Count, mean and sum of squared deviations of features, and of confidence (Chan et al.'s merge)."""

    count: int = 0
    feature_mean: np.ndarray | None = None
    feature_m2: np.ndarray | None = None
    confidence_count: int = 0
    confidence_mean: float = 0.0
    confidence_m2: float = 0.0

    def update_features(self, features: np.ndarray) -> None:
        batch = np.asarray(features, dtype=np.float64)
        n, mean = len(batch), batch.mean(axis=0)
        m2 = ((batch - mean) ** 2).sum(axis=0)
        if self.feature_mean is None:
            self.count, self.feature_mean, self.feature_m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.feature_mean
        self.feature_mean = self.feature_mean + delta * n / total
        self.feature_m2 = self.feature_m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    def update_confidence(self, probabilities: np.ndarray) -> None:
        confidence = np.asarray(probabilities, dtype=np.float64).max(axis=1)
        n, mean = len(confidence), float(confidence.mean())
        m2 = float(((confidence - mean) ** 2).sum())
        total = self.confidence_count + n
        delta = mean - self.confidence_mean
        self.confidence_mean += delta * n / total
        self.confidence_m2 += m2 + delta**2 * self.confidence_count * n / total
        self.confidence_count = total

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "feature_mean": None if self.feature_mean is None else self.feature_mean.tolist(),
            "feature_std": None if self.feature_m2 is None else np.sqrt(self.feature_m2 / max(self.count, 1)).tolist(),
            "confidence_count": self.confidence_count,
            "confidence_mean": self.confidence_mean,
            "confidence_std": float(np.sqrt(self.confidence_m2 / max(self.confidence_count, 1))),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunningStats:
        stats = cls()
        stats.count = int(data["count"])
        if data["feature_mean"] is not None:
            stats.feature_mean = np.asarray(data["feature_mean"], dtype=np.float64)
            stats.feature_m2 = np.asarray(data["feature_std"], dtype=np.float64) ** 2 * stats.count
        stats.confidence_count = int(data["confidence_count"])
        stats.confidence_mean = float(data["confidence_mean"])
        stats.confidence_m2 = float(data["confidence_std"]) ** 2 * stats.confidence_count
        return stats


def drift_features(features: np.ndarray, intermediate_shape: list[int] | None) -> np.ndarray:
    """What drift statistics are kept on: the backbone's features, or a fused bundle's activation per channel.

    A fused bundle's backbone outputs a whole activation map (thousands of
    values per example); its per-channel means are what pooling would make of
    it, and keep the reference a few hundred numbers long.
    """
    if intermediate_shape is None:
        return features
    array = np.asarray(features)
    return array.reshape(len(array), intermediate_shape[0], -1).mean(axis=2)


def reference_statistics(features: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """The reference a bundle ships: feature and confidence statistics of the export-time data.

    Args:
        features: :func:`drift_features` of the server examples.
        probabilities: the shipped head's class probabilities on them, shape (n, n_classes).
    """
    stats = RunningStats()
    stats.update_features(features)
    stats.update_confidence(probabilities)
    return stats.to_dict()


def feature_shift(reference: dict[str, Any], mean: np.ndarray) -> float:
    """``||mean - mu_ref|| / sqrt(sum of reference variances)``: see :func:`compare`."""
    ref_mean = np.asarray(reference["feature_mean"], dtype=np.float64)
    spread = float(np.sqrt((np.asarray(reference["feature_std"], dtype=np.float64) ** 2).sum()))
    return float(np.linalg.norm(np.asarray(mean, np.float64) - ref_mean) / max(spread, 1e-12))


def compare(reference: dict[str, Any], local: RunningStats, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Score how far local data has moved from the reference.

    ``feature_shift`` is the distance between the local and the reference
    feature means, in units of the reference's overall spread
    (``||mu_local - mu_ref|| / sqrt(sum of reference variances)``): about 0 for
    data like the export data, near 1 when the mean has moved as far as a
    typical example lies from it. ``confidence_drop`` is how much less sure the
    head is on local data, a second sign reported alongside.

    Returns:
        drifted (feature_shift above threshold), the two scores, the counts and
        a one-line reason.
    """
    if local.count == 0 or local.feature_mean is None:
        return {
            "drifted": False,
            "feature_shift": None,
            "confidence_drop": None,
            "threshold": threshold,
            "examples_seen": 0,
            "reason": "no local examples seen yet",
        }
    shift = feature_shift(reference, local.feature_mean)
    drop = reference["confidence_mean"] - local.confidence_mean if local.confidence_count else None
    drifted = shift > threshold
    reason = (
        f"feature shift {shift:.3f} is {'above' if drifted else 'within'} the threshold {threshold} "
        f"over {local.count} local examples"
    )
    return {
        "drifted": drifted,
        "feature_shift": shift,
        "confidence_drop": drop,
        "threshold": threshold,
        "examples_seen": local.count,
        "reference_examples": reference["count"],
        "reason": reason,
    }
