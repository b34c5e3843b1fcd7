"""What quantization costs, measured: size, latency, and FP32-vs-INT8 agreement."""

from __future__ import annotations

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


def split_indices(labels: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/validation indices: ``fraction`` of every class (at least one) goes to validation.

    A class with a single example stays wholly in training: the head must see every class.
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for label in sorted(by_class):
        idx = rng.permutation(by_class[label])
        n_val = 0 if fraction == 0 or len(idx) < 2 else max(1, round(fraction * len(idx)))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(val, np.int64))


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
    validation: tuple[Any, list[str], np.ndarray] | None,
    config: ExportConfig,
) -> dict[str, Any]:
    """Size and latency of the FP32 and INT8 backbones, and their agreement on validation data.

    The same trained head runs on both backbones' features, so any difference
    in its predictions is what quantization did.

    Args:
        personalizer: the bundle with its FP32 backbone (and trained head, when there was data).
        int8: the quantized backbone file.
        bench: one batch of examples to time both backbones on.
        validation: held-out examples, their labels and the FP32 predictions, or None.
        config: holds the quality guard (``max_quality_loss``, ``accept_quality_loss``).

    Returns:
        Metrics for the manifest.

    Raises:
        ExportError: INT8 loses more accuracy than ``config.max_quality_loss``
            and ``config.accept_quality_loss`` is not set.
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
    if validation is None:
        return metrics
    X_val, y_val, fp32_pred = validation
    # A cache of its own too: the FP32 features of these rows are cached, and would answer in INT8's stead.
    fp32_cache = personalizer.cache
    personalizer.backbone = int8_backbone
    personalizer.cache = FeatureCache("int8-measurement", personalizer.bundle.manifest.backbone.feature_size, fp32_cache.memory_bytes)
    try:
        int8_pred = personalizer.predict(X_val)
    finally:
        personalizer.backbone, personalizer.cache = fp32_backbone, fp32_cache
    truth = np.asarray(y_val)
    fp32_acc, int8_acc = float(np.mean(fp32_pred == truth)), float(np.mean(int8_pred == truth))
    metrics.update({
        "validation_accuracy_fp32": fp32_acc,
        "validation_accuracy_int8": int8_acc,
        "int8_identical_predictions": float(np.mean(fp32_pred == int8_pred)),
        "int8_accuracy_loss": fp32_acc - int8_acc,
    })
    check_quality_loss(fp32_acc, int8_acc, metrics["int8_identical_predictions"], len(truth), config)
    return metrics


def check_quality_loss(fp32_acc: float, int8_acc: float, identical: float, n: int, config: ExportConfig) -> None:
    """The quality guard: refuse an INT8 backbone that loses more than ``config.max_quality_loss`` accuracy.

    Raises:
        ExportError: the loss is over the threshold and ``config.accept_quality_loss`` is not set.
    """
    # The tolerance: 0.95 - 0.94 is 0.01000000000000001 in floats, and one point must pass a one-point guard.
    if fp32_acc - int8_acc > config.max_quality_loss + 1e-9 and not config.accept_quality_loss:
        raise ExportError(
            f"The INT8 backbone loses {100 * (fp32_acc - int8_acc):.1f} accuracy points on the "
            f"{n} validation examples (FP32 {fp32_acc:.3f}, INT8 {int8_acc:.3f}, identical "
            f"predictions {100 * identical:.0f}%), more than the "
            f"{100 * config.max_quality_loss:.1f} allowed (--max-quality-loss). Export with --quantize none "
            "(or another INT8 mode), or pass --accept-quality-loss to ship it anyway. No bundle was written."
        )
