"""The per-step baselines' training loop: edgeft's batches and schedule, the backbone run at every step."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from device_runtime.trainer import learning_rate_at
from edgeft.config import TrainConfig

# step(examples of one batch, their class indices, learning rate): forward through the backbone, backward, update.
Step = Callable[[list, np.ndarray, float], None]


def train_per_step(step: Step, examples: list, targets: np.ndarray, epochs: int, config: TrainConfig) -> None:
    """Shuffled mini-batches, drawn as edgeft's trainer draws them, each handed to ``step`` with its learning rate."""
    rng = np.random.default_rng(config.seed)
    steps = epochs * math.ceil(len(examples) / config.batch_size)
    done = 0
    for _ in range(epochs):
        order = rng.permutation(len(examples))
        for start in range(0, len(examples), config.batch_size):
            batch = order[start : start + config.batch_size]
            step([examples[i] for i in batch], targets[batch], learning_rate_at(done, steps, config))
            done += 1
