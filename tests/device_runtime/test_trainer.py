"""The learning-rate schedule, step by step."""

from __future__ import annotations

import pytest

from device_runtime.trainer import learning_rate_at
from edgeft.config import TrainConfig


def rates(config: TrainConfig, total: int) -> list[float]:
    return [learning_rate_at(step, total, config) for step in range(total)]


def test_constant_schedule_keeps_the_peak_rate() -> None:
    assert rates(TrainConfig(lr=0.1, schedule="constant"), 4) == [0.1] * 4


def test_linear_schedule_decays_from_the_peak_towards_zero() -> None:
    assert rates(TrainConfig(lr=0.1, schedule="linear"), 4) == pytest.approx([0.1, 0.075, 0.05, 0.025])


def test_warmup_rises_linearly_then_decay_starts_at_the_peak() -> None:
    got = rates(TrainConfig(lr=0.1, schedule="linear", warmup_steps=2), 6)
    assert got == pytest.approx([0.05, 0.1, 0.1, 0.075, 0.05, 0.025])


def test_cosine_schedule_passes_half_the_peak_midway() -> None:
    got = rates(TrainConfig(lr=0.2, schedule="cosine"), 4)
    assert got == pytest.approx([0.2, 0.2 * (1 + 2**-0.5) / 2, 0.1, 0.2 * (1 - 2**-0.5) / 2])
