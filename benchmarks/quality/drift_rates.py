"""False alarms and detection of the windowed drift test, on backbone features computed once.

Every window is tested exactly as a device tests it
(:func:`device_runtime.two_sample.mmd_permutation_test` against the bundle's
``reference_sample.npz``, with :class:`~edgeft.config.DriftConfig`'s
permutations); only the features are computed once and drawn from, so that
hundreds of windows cost seconds of backbone time instead of hours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device_runtime.drift import feature_shift
from device_runtime.two_sample import mmd_permutation_test
from edgeft.config import DriftConfig

LEVELS = (0.01, 0.05)
CUMULATIVE_BEFORE = 1000  # normal predictions before the switch, for the cumulative rule's "before" figure


def false_alarms(pool: np.ndarray, reference: np.ndarray, window: int, windows: int, seed: int) -> dict[str, Any]:
    """Alarm rate over ``windows`` random windows of held-out data from the export's own distribution."""
    rng = np.random.default_rng(seed)
    p_values = [
        mmd_permutation_test(
            pool[rng.choice(len(pool), window, replace=False)], reference, permutations=DriftConfig.permutations, seed=i
        ).p_value
        for i in range(windows)
    ]
    return {
        "window": window,
        "windows": windows,
        **{f"alarm_rate_{lv}": float(np.mean(np.asarray(p_values) <= lv)) for lv in LEVELS},
    }


def detection(
    normal: np.ndarray, shifted: np.ndarray, reference: np.ndarray, window: int, trials: int, seed: int, level: float = 0.01
) -> dict[str, Any]:
    """Streams of ``window`` normal examples, then shifted ones: detection rate and delay (shifted examples seen).

    The test runs every ``window // 5`` predictions after the switch, up to
    ``2 * window`` of them (fewer where the shifted pool is smaller); a stream
    not flagged by then counts as missed.
    """
    rng = np.random.default_rng(seed)
    step, horizon, delays = max(1, window // 5), min(2 * window, len(shifted)), []
    for trial in range(trials):
        before = normal[rng.choice(len(normal), window, replace=False)]
        after = shifted[rng.choice(len(shifted), horizon, replace=False)]
        for seen in range(step, horizon + 1, step):
            current = np.concatenate([before, after[:seen]])[-window:]
            test = mmd_permutation_test(current, reference, level=level, permutations=DriftConfig.permutations, seed=trial)
            if test.rejected:
                delays.append(seen)
                break
    return {
        "window": window,
        "trials": trials,
        "level": level,
        "check_every": step,
        "horizon": horizon,
        "detection_rate": len(delays) / trials,
        "median_delay": float(np.median(delays)) if delays else None,
        "max_delay": int(max(delays)) if delays else None,
    }


def cumulative_delay(normal: np.ndarray, shifted: np.ndarray, reference: dict[str, Any], threshold: float = 0.5) -> int | None:
    """Before this change: shifted examples needed, after CUMULATIVE_BEFORE normal ones, for the cumulative mean to cross 0.5."""
    total = normal[:CUMULATIVE_BEFORE].sum(axis=0, dtype=np.float64)
    for n, row in enumerate(shifted, start=1):
        total += row
        if feature_shift(reference, total / (CUMULATIVE_BEFORE + n)) > threshold:
            return n
    return None
