"""A row too slow to run in full is timed on one step; its headline time is steps x that step's time."""

from __future__ import annotations

from benchmarks.speed.worker import estimate


def test_the_estimate_counts_batches_per_epoch_times_epochs() -> None:
    measured = {"examples": 32, "epochs": 1, "median_s": 40.0}  # one step of 32
    got = estimate(measured, {"examples": 160, "epochs": 3}, batch_size=32)
    assert got == {"examples": 160, "epochs": 3, "steps": 15, "per_step_s": 40.0, "median_s": 600.0}


def test_a_last_short_batch_counts_as_a_step() -> None:
    measured = {"examples": 64, "epochs": 2, "median_s": 40.0}  # 4 steps of 10 s
    assert estimate(measured, {"examples": 100, "epochs": 1}, batch_size=32)["median_s"] == 40.0  # 4 batches
