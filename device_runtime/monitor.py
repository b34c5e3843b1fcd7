"""The device's recent inputs, tested against the bundle's reference sample: windowed drift with a stated level.

:class:`DriftMonitor` keeps the drift features and confidences of the last
``window`` predictions (and, if asked, only those younger than
``window_seconds``). :func:`drift_report` runs the MMD permutation test of
:mod:`device_runtime.two_sample` between that window and the reference sample
the exporter stored, beside the cumulative statistics of
:mod:`device_runtime.drift`, so a shift that starts after months of normal use
is not diluted by them. The monitor is saved with the state and survives head
swaps, rollbacks and restarts.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import threading
import time
from typing import Any

import numpy as np

from device_runtime.drift import RunningStats, compare, feature_shift
from device_runtime.two_sample import mmd_permutation_test
from edgeft.config import DriftConfig
from edgeft.layout import REFERENCE_SAMPLE


@dataclasses.dataclass(frozen=True)
class ReferenceSample:
    """A bounded random sample of the export data's drift features and the shipped head's confidence on them."""

    features: np.ndarray  # (n, d) float32
    confidence: np.ndarray  # (n,) float32


class DriftMonitor:
    """The recent window of predictions, when it was last tested, and whether that test fired.

    Thread-safe: predictions on one head and a report on another may share it.
    """

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self._lock = threading.Lock()
        self._rows: collections.deque[tuple[np.ndarray, float, float]] = collections.deque(maxlen=self.config.window)
        self.observed = 0  # predictions ever seen, window or not
        self.since_check = 0  # predictions since the last automatic check
        self.alarm = False  # whether the last check found drift: alerts fire on the change to True

    def observe(self, features: np.ndarray, confidence: np.ndarray, now: float | None = None) -> None:
        """Add a batch of predictions: their drift features (n, d) and the head's top probability (n,)."""
        stamp = time.time() if now is None else now
        with self._lock:
            for row, c in zip(np.asarray(features, np.float32), np.asarray(confidence, np.float32)):
                self._rows.append((row, float(c), stamp))
            self.observed += len(features)
            self.since_check += len(features)

    def window(self, now: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The window's (features, confidences, unix times), oldest first, without rows past ``window_seconds``."""
        with self._lock:
            rows = list(self._rows)
        if self.config.window_seconds is not None:
            oldest = (time.time() if now is None else now) - self.config.window_seconds
            rows = [r for r in rows if r[2] >= oldest]
        if not rows:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.float32), np.zeros(0)
        return np.stack([r[0] for r in rows]), np.asarray([r[1] for r in rows], np.float32), np.asarray([r[2] for r in rows])

    def due(self) -> bool:
        """Whether an automatic check should run now (``check_every`` new predictions and a full enough window)."""
        c = self.config
        return bool(c.check_every) and self.since_check >= c.check_every and len(self._rows) >= c.min_window

    def record_check(self, drifted: bool) -> bool:
        """Note a check's outcome. Returns True when it is news: drift found after a check that found none."""
        with self._lock:
            fired = drifted and not self.alarm
            self.alarm, self.since_check = drifted, 0
            return fired

    def to_dict(self) -> dict[str, Any]:
        """The monitor as JSON-ready values (features as base64 float32), for the state's record."""
        with self._lock:
            rows = list(self._rows)
            counters = {"observed": self.observed, "since_check": self.since_check, "alarm": self.alarm}
        features = np.stack([r[0] for r in rows]) if rows else np.zeros((0, 0), np.float32)
        return {
            "shape": list(features.shape),
            "features": base64.b64encode(np.ascontiguousarray(features, "<f4").tobytes()).decode("ascii"),
            "confidence": [r[1] for r in rows],
            "times": [r[2] for r in rows],
            **counters,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: DriftConfig | None = None) -> DriftMonitor:
        """The monitor :meth:`to_dict` wrote; with a smaller ``window``, only the newest rows are kept."""
        monitor = cls(config)
        features = np.frombuffer(base64.b64decode(data["features"]), "<f4").reshape(data["shape"])
        for row, c, t in zip(features, data["confidence"], data["times"]):
            monitor._rows.append((row.copy(), float(c), float(t)))
        monitor.observed, monitor.since_check, monitor.alarm = (
            int(data["observed"]),
            int(data["since_check"]),
            bool(data["alarm"]),
        )
        return monitor


def reference_sample(features: np.ndarray, probabilities: np.ndarray, limit: int, seed: int) -> dict[str, np.ndarray]:
    """The bounded sample a bundle ships for the test: at most ``limit`` random rows, as arrays for an .npz.

    Args:
        features: :func:`~device_runtime.drift.drift_features` of the server examples, (n, d).
        probabilities: the shipped head's probabilities on them, (n, n_classes).
        limit: the most rows kept (bounds the bundle's size and the test's cost).
        seed: which rows.
    """
    rows = np.sort(np.random.default_rng(seed).permutation(len(features))[:limit])
    return {
        "features": np.asarray(features, np.float32)[rows],
        "confidence": np.asarray(probabilities, np.float32).max(axis=1)[rows],
    }


def drift_report(
    reference: dict[str, Any], sample: ReferenceSample | None, seen: RunningStats, monitor: DriftMonitor, threshold: float
) -> dict[str, Any]:
    """The windowed test beside the cumulative scores, with a sentence saying what they mean.

    ``drifted`` is the test's decision when it can run (the bundle has a
    reference sample and the window holds ``min_window`` predictions); else
    the cumulative rule of :func:`~device_runtime.drift.compare`, and ``test``
    says why the test did not run.
    """
    report = compare(reference, seen, threshold)
    report["over_threshold"] = report["drifted"]  # the cumulative rule's decision, whichever decides
    features, confidence, times = monitor.window()
    window = {
        "examples": len(features),
        "capacity": monitor.config.window,
        "seconds": monitor.config.window_seconds,
        "observed": monitor.observed,
        "oldest": _iso(times[0]) if len(times) else None,
        "newest": _iso(times[-1]) if len(times) else None,
        "feature_shift": feature_shift(reference, features.mean(axis=0)) if len(features) else None,
    }
    report.update(window=window, confidence=_confidence(reference, sample, confidence))
    if sample is None:
        report.update(
            test={"available": False, "reason": f"the bundle has no {REFERENCE_SAMPLE}; re-export it to test windows"},
            decided_by="feature_shift_threshold",
        )
        report["reason"] += "; the windowed test is unavailable: the bundle has no reference sample (re-export it)"
        return report
    if len(features) < monitor.config.min_window:
        report.update(
            test={
                "available": False,
                "reason": f"the window holds {len(features)} prediction(s); the test needs {monitor.config.min_window}",
            },
            decided_by="feature_shift_threshold",
        )
        report["reason"] += f"; the windowed test waits for {monitor.config.min_window} predictions ({len(features)} so far)"
        return report
    c = monitor.config
    result = mmd_permutation_test(features, sample.features, level=c.level, permutations=c.permutations, seed=c.seed)
    report.update(
        test={"available": True, **result.to_dict(), "reference_sample": len(sample.features)},
        drifted=result.rejected,
        decided_by="mmd_test",
        reason=_sentence(result.rejected, result.p_value, c.level, len(features), report["confidence"]),
    )
    return report


def _confidence(reference: dict[str, Any], sample: ReferenceSample | None, window: np.ndarray) -> dict[str, Any]:
    at_export = float(sample.confidence.mean()) if sample is not None else reference["confidence_mean"]
    mean = float(window.mean()) if len(window) else None
    return {"window_mean": mean, "reference_mean": at_export, "drop": None if mean is None else at_export - mean}


def _sentence(drifted: bool, p_value: float, level: float, n: int, confidence: dict[str, Any]) -> str:
    verdict = (
        f"The last {n} predictions differ from the export data (MMD permutation test, p = {p_value:.3g} <= level {level}): drift"
        if drifted
        else f"The last {n} predictions are consistent with the export data (MMD permutation test, p = {p_value:.3g} > level {level})"
    )
    return f"{verdict}; mean confidence {confidence['window_mean']:.2f} against {confidence['reference_mean']:.2f} at export."


def _iso(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).isoformat(timespec="seconds")
