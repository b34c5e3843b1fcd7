"""Classification metrics in numpy: the one definition both sides report."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Each row's log-probabilities, computed after subtracting the row's largest logit so that no exp overflows."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropies(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each row's cross-entropy: minus the log-probability of its target class."""
    return -log_softmax(logits)[np.arange(len(targets)), targets]


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy, as the training graph computes it."""
    return float(np.mean(cross_entropies(logits, targets)))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """Accuracy, macro precision/recall/F1, per-class F1 and the confusion matrix.

    Classes absent from both ``y_true`` and ``y_pred`` are left out of the macro
    averages (as in scikit-learn with ``labels`` unset), so a small local data
    set is not penalized for classes it never shows.
    """
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = (predicted + actual) > 0
    return {
        "accuracy": float(tp.sum() / max(matrix.sum(), 1)),
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_f1": f1.tolist(),
        "confusion_matrix": matrix.tolist(),
        "n": int(matrix.sum()),
    }
