"""Scoring a head on labelled features: the numbers early stopping and acceptance compare."""

from __future__ import annotations

from typing import Any

import numpy as np

from device_runtime.engines import HeadEngine
from edgeft.config import Metric
from edgeft.metrics import classification_report, cross_entropy


def batched_logits(engine: HeadEngine, features: np.ndarray, batch_size: int, n_classes: int | None = None) -> np.ndarray:
    """The engine's logits for every row of ``features``, a batch at a time.

    ``n_classes`` keeps the first that many outputs: spare output slots no
    label has claimed (see :mod:`device_runtime.labels`) are masked out, so
    neither softmax nor argmax ever sees them.
    """
    logits = np.concatenate(
        [engine.logits(np.asarray(features[i : i + batch_size])) for i in range(0, len(features), batch_size)]
    )
    return logits if n_classes is None else logits[:, :n_classes]


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def score_head(engine: HeadEngine, features: np.ndarray, targets: np.ndarray, n_classes: int, batch_size: int) -> dict[str, Any]:
    """Loss, accuracy, macro P/R/F1 and the confusion matrix of the engine's head."""
    return score_logits(batched_logits(engine, features, batch_size, n_classes), targets, n_classes)


def score_logits(logits: np.ndarray, targets: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Loss, accuracy, macro P/R/F1 and the confusion matrix of a head's ``logits`` for ``targets``."""
    return {"loss": cross_entropy(logits, targets), **classification_report(targets, logits.argmax(axis=1), n_classes)}


def is_better(metric: Metric, new: float, old: float) -> bool:
    """Strictly better: lower loss, or higher accuracy / macro F1."""
    return new < old if metric is Metric.LOSS else new > old
