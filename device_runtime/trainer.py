"""The head's training loop over cached features, readable top to bottom."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from device_runtime.ort_training import HeadTrainingSession
from edgeft.config import Schedule, TrainConfig


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a progress callback receives: one stage of the work, how far along."""

    stage: str  # "features" or "train"
    done: int  # examples embedded, or epochs finished
    total: int
    loss: float | None = None  # mean training loss of the last epoch


ProgressCallback = Callable[[Progress], None]


def learning_rate_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule is Schedule.CONSTANT:
        return config.lr
    decay_steps = max(total_steps - config.warmup_steps, 1)
    progress = (step - config.warmup_steps) / decay_steps
    if config.schedule is Schedule.LINEAR:
        return config.lr * (1.0 - progress)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_head(
    session: HeadTrainingSession,
    features: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig,
    progress: ProgressCallback | None = None,
) -> list[float]:
    """Train the head for ``config.epochs`` shuffled epochs; returns each epoch's mean loss."""
    rng = np.random.default_rng(config.seed)
    n = len(features)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    step, history = 0, []
    for epoch in range(config.epochs):
        order = rng.permutation(n)
        loss_sum = 0.0
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            session.learning_rate = learning_rate_at(step, total_steps, config)
            loss_sum += session.train_step(features[batch], targets[batch]) * len(batch)
            step += 1
        history.append(loss_sum / n)
        if progress:
            progress(Progress("train", epoch + 1, config.epochs, history[-1]))
    return history
