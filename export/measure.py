"""What quantization costs, measured: size, latency, and FP32-vs-INT8 agreement."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime import Personalizer
from device_runtime.backbone import backbone_for
from device_runtime.cache import FeatureCache
from edgeft.config import ExportConfig
from edgeft.errors import ExportError

_LATENCY_REPEATS = 5


def take(X: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of texts (a list) or images (an array)."""
    return X[idx] if isinstance(X, np.ndarray) else [X[i] for i in idx]


def latency_ms(*backbones: Any, X: Any) -> list[float]:
    """Median wall time of each backbone on the batch ``X``, in ms, after one warm-up run each.

    Runs alternate between the backbones, so load from other processes on a
    shared machine weighs on each about equally.
    """
    times: list[list[float]] = [[] for _ in backbones]
    for backbone in backbones:
        backbone.features(X, batch_size=len(X))
    for _ in range(_LATENCY_REPEATS):
        for backbone, spent in zip(backbones, times):
            start = time.perf_counter()
            backbone.features(X, batch_size=len(X))
            spent.append(time.perf_counter() - start)
    return [round(statistics.median(spent) * 1000, 3) for spent in times]


def compare_precisions(
    personalizer: Personalizer,
    int8: Path,
    bench: Any,
    X: Any,
    labels: list[str] | None,
    validation: np.ndarray | None,
) -> dict[str, Any]:
    """Size and latency of the FP32 and INT8 backbones, their agreement on every server example, and their
    accuracy on the validation split.

    The same trained head runs on both backbones' features, so any difference
    in its predictions is what quantization did. Agreement needs no labels, so
    it is counted on all of ``X``; accuracy only on the held-out ``validation`` rows.

    Args:
        personalizer: the bundle with its FP32 backbone (and trained head, when there was data).
        int8: the quantized backbone file.
        bench: one batch of examples to time both backbones on.
        X, labels: the server examples and their labels, or None.
        validation: the indices of ``X`` held out from the head's training, or None.

    Returns:
        Metrics for the manifest.

    Raises:
        ExportError: ONNX Runtime cannot run the INT8 backbone.
    """
    fp32_backbone = personalizer.backbone
    try:
        int8_backbone = backbone_for(personalizer.bundle, model_path=str(int8))
    except Exception as e:  # ORT's errors have no common base but RuntimeError-like native types
        raise ExportError(f"ONNX Runtime cannot run the quantized backbone ({e}); export with --quantize none.") from e
    fp32_ms, int8_ms = latency_ms(fp32_backbone, int8_backbone, X=bench)
    metrics: dict[str, Any] = {
        "backbone_bytes_int8": int8.stat().st_size,
        "latency_batch_size": len(bench),
        "backbone_latency_ms_fp32": fp32_ms,
        "backbone_latency_ms_int8": int8_ms,
    }
    if X is None:
        return metrics
    fp32_pred = personalizer.predict(X)
    # A cache of its own too: the FP32 features of these rows are cached, and would answer in INT8's stead.
    fp32_cache = personalizer.cache
    personalizer.backbone = int8_backbone
    personalizer.cache = FeatureCache(
        "int8-measurement", personalizer.bundle.manifest.backbone.feature_size, fp32_cache.memory_bytes
    )
    try:
        int8_pred = personalizer.predict(X)
    finally:
        personalizer.backbone, personalizer.cache = fp32_backbone, fp32_cache
    metrics.update(
        {
            "int8_agreement_examples": len(X),
            "int8_identical_predictions": float(np.mean(fp32_pred == int8_pred)),
        }
    )
    if validation is None or len(validation) == 0:
        return metrics
    truth = np.asarray(labels)[validation]
    fp32_acc, int8_acc = float(np.mean(fp32_pred[validation] == truth)), float(np.mean(int8_pred[validation] == truth))
    metrics.update(
        {
            "validation_accuracy_fp32": fp32_acc,
            "validation_accuracy_int8": int8_acc,
            "int8_accuracy_loss": fp32_acc - int8_acc,
        }
    )
    return metrics


def check_quality_loss(fp32_acc: float, int8_acc: float, identical: float, n: int, config: ExportConfig) -> None:
    """The guard of an INT8 mode chosen by name: refuse a backbone that loses more than
    ``config.max_quality_loss`` accuracy on the ``n`` validation examples.

    Raises:
        ExportError: the loss is over the threshold and ``config.accept_quality_loss`` is not set.
    """
    # The tolerance: 0.95 - 0.94 is 0.01000000000000001 in floats, and one point must pass a one-point guard.
    if fp32_acc - int8_acc > config.max_quality_loss + 1e-9 and not config.accept_quality_loss:
        raise ExportError(
            f"The INT8 backbone loses {100 * (fp32_acc - int8_acc):.1f} accuracy points on the "
            f"{n} validation examples (FP32 {fp32_acc:.3f}, INT8 {int8_acc:.3f}, identical "
            f"predictions {100 * identical:.0f}% of the server examples), more than the "
            f"{100 * config.max_quality_loss:.1f} allowed (--max-quality-loss). Export with --quantize auto or none "
            "(or another INT8 mode), or pass --accept-quality-loss to ship it anyway. No bundle was written."
        )


def disagreement_bound(disagreements: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on the rate at which INT8 changes FP32's predictions.

    ``disagreements`` of ``n`` examples changed; the true rate is below the
    bound with probability ``confidence``. Each lost correct prediction is a
    changed one, so the bound is also a bound on the accuracy INT8 loses.
    With no disagreement it is ``1 - (1 - confidence) ** (1 / n)`` (about 3/n at 95%).
    """
    if n <= 0 or disagreements >= n:
        return 1.0
    alpha = 1 - confidence
    low, high = disagreements / n, 1.0
    for _ in range(60):  # bisection: the binomial CDF falls as p rises; 60 halvings reach float precision
        mid = (low + high) / 2
        if _binomial_cdf(disagreements, n, mid) > alpha:
            low = mid
        else:
            high = mid
    return high


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space so that large ``n`` does not overflow."""
    if p >= 1:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p) if p > 0 else -math.inf, math.log1p(-p)
    total = 0.0
    for i in range(k + 1):
        log_comb = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        total += math.exp(log_comb + (i * log_p if i else 0.0) + (n - i) * log_q)
    return total


def examples_needed(max_loss: float, confidence: float) -> int | None:
    """The fewest server examples whose full agreement bounds the loss within ``max_loss``; None if none do."""
    if max_loss <= 0:
        return None
    if max_loss >= 1:
        return 1
    return math.ceil(math.log(1 - confidence) / math.log1p(-max_loss) - 1e-9)
