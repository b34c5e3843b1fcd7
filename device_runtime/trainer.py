"""The head's training loop over cached features, readable top to bottom."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable

import numpy as np

from device_runtime.engines import HeadEngine
from device_runtime.scoring import is_better, score_head
from edgeft.config import Schedule, TrainConfig


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a progress callback receives: one stage of the work, how far along."""

    stage: str  # "features" or "train"
    done: int  # examples embedded, or epochs finished
    total: int
    loss: float | None = None  # mean training loss of the last epoch
    metric: float | None = None  # the validation metric after that epoch, where early stopping watches it


ProgressCallback = Callable[[Progress], None]


@dataclasses.dataclass
class TrainResult:
    """What one training run did, and why it stopped."""

    history: list[float]  # mean training loss per epoch
    val_history: list[float]  # validation metric per epoch (with early stopping)
    steps: int
    stopped: str  # "completed", "early_stopping", "time_budget" or "cancelled"
    best_epoch: int | None = None  # 1-based epoch whose weights were kept (early stopping)


def learning_rate_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``: warm-up, then the schedule."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule is Schedule.CONSTANT:
        return config.lr
    decay_steps = max(total_steps - config.warmup_steps, 1)
    progress = (step - config.warmup_steps) / decay_steps
    if config.schedule is Schedule.LINEAR:
        return config.lr * (1.0 - progress)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def epoch_order(rng: np.random.Generator, targets: np.ndarray, balanced: bool) -> np.ndarray:
    """The example indices of one epoch: a shuffle, or a draw weighted by 1/class count."""
    n = len(targets)
    if not balanced:
        return rng.permutation(n)
    counts = np.bincount(targets)
    weights = 1.0 / counts[targets]
    return rng.choice(n, size=n, replace=True, p=weights / weights.sum())


def train_head(
    engine: HeadEngine,
    features: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig,
    *,
    rows: np.ndarray | None = None,
    validation: tuple[np.ndarray, np.ndarray, int] | None = None,
    deadline: float | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train ``engine``'s head on ``features``, ``targets`` as ``config`` says.

    Args:
        engine: the head to train, in place.
        features, targets: examples (rows of features, class indices); ``features``
            may be a disk-backed memmap: only each batch's rows are read.
        config: epochs, batch size, schedule, sampling, patience and metric.
        rows: the indices of ``features``/``targets`` to train on; None: all.
        validation: (features, targets, n_classes) that early stopping scores.
        deadline: a ``time.monotonic()`` value; no step starts after it.
        cancel: set from another thread to stop before the next step.
        progress: called after every epoch.

    Returns:
        The losses per epoch, the steps taken and why training stopped. With
        early stopping the engine holds the best epoch's weights.
    """
    rng = np.random.default_rng(config.seed)
    rows = np.arange(len(targets)) if rows is None else np.asarray(rows)
    targets = targets[rows]
    n = len(rows)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    result = TrainResult([], [], 0, "completed")
    best: tuple[float, dict[str, np.ndarray]] | None = None
    waited = 0
    for epoch in range(config.epochs):
        order = epoch_order(rng, targets, config.balanced_sampling)
        loss_sum, seen = 0.0, 0
        for start in range(0, n, config.batch_size):
            if cancel is not None and cancel.is_set():
                result.stopped = "cancelled"
            elif deadline is not None and time.monotonic() >= deadline:
                result.stopped = "time_budget"
            if result.stopped != "completed":
                break
            batch = np.sort(order[start : start + config.batch_size])
            lr = learning_rate_at(result.steps, total_steps, config)
            loss_sum += engine.train_step(np.asarray(features[rows[batch]]), targets[batch], lr) * len(batch)
            seen += len(batch)
            result.steps += 1
        if seen:
            result.history.append(loss_sum / seen)
        if result.stopped != "completed":
            break
        metric = None
        if config.patience is not None and validation is not None:
            metric = score_head(engine, validation[0], validation[1], validation[2], config.batch_size)[config.metric.value]
            result.val_history.append(metric)
            if best is None or is_better(config.metric, metric, best[0]):
                best, waited, result.best_epoch = (metric, engine.parameters()), 0, epoch + 1
            else:
                waited += 1
        if progress:
            progress(Progress("train", epoch + 1, config.epochs, result.history[-1], metric))
        if config.patience is not None and waited >= config.patience:
            result.stopped = "early_stopping"
            break
    if best is not None:
        engine.set_parameters(best[1])
    return result
