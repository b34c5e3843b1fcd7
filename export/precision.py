"""Which precision the bundle's backbone ships in: the mode asked for, or under ``auto`` the one measured to fit.

``auto`` quantizes the FP32 backbone both ways (int8-dynamic, int8-static),
runs the same trained head on each, and counts on every server example how
often INT8 changes FP32's prediction. Every accuracy point INT8 loses is a
changed prediction, so a 95% upper confidence bound on the rate of change
(Clopper-Pearson, :func:`export.measure.disagreement_bound`) bounds the loss
with the number of examples taken into account: 10 agreeing examples prove
little, 300 prove a one-point margin. The smallest backbone whose bound is
within ``max_quality_loss`` ships; FP32 is always within it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime import Personalizer
from edgeft.config import ExportConfig, Quantization
from edgeft.errors import ExportError
from export.measure import (
    check_quality_loss,
    compare_precisions,
    disagreement_bound,
    examples_needed,
    latency_ms,
    take,
)
from export.quantize import quantize_backbone

# How sure auto must be that an INT8 backbone stays within the margin.
CONFIDENCE = 0.95
# Calibration of int8-static: enough batches for stable ranges, few enough to take seconds.
_CALIBRATION_EXAMPLES = 64
# What auto tries, besides FP32.
_INT8_MODES = (Quantization.INT8_DYNAMIC, Quantization.INT8_STATIC)


def ship_backbone(
    backbone: Path,
    work: Path,
    personalizer: Personalizer,
    X: Any,
    labels: list[str] | None,
    validation: np.ndarray | None,
    bench: Any,
    config: ExportConfig,
    quantized: list[str],
) -> tuple[str, dict[str, Any]]:
    """Replace the FP32 ``backbone`` in the bundle by the precision ``config.quantization`` asks or auto chooses.

    Args:
        backbone: the bundle's backbone file, FP32 (or as given, when ``quantized``).
        work: a scratch folder for the candidates.
        personalizer: the bundle loaded on that backbone, head trained when there was data.
        X, labels: the server examples and their labels, or None.
        validation: the indices of ``X`` the head did not train on, or None.
        bench: one batch of examples to time backbones on.
        config: the quantization mode and its margin.
        quantized: what marks ``backbone`` as quantized already (see
            :func:`export.onnx_file.quantization_evidence`); empty for a float graph.

    Returns:
        The precision shipped ("fp32" or "int8") and the metrics for the manifest,
        ``metrics["quantization"]`` saying which mode shipped and why.

    Raises:
        ExportError: an INT8 mode chosen by name loses more than the margin
            on the validation split (unless accepted), or cannot run.
    """
    mode = config.quantization
    if quantized:
        metrics = {"backbone_latency_ms_int8": latency_ms(personalizer.backbone, X=bench)[0]}
        return "int8", {
            **metrics,
            "quantization": _record(
                "pre-quantized",
                mode,
                f"pre-quantized: the ONNX file is quantized already ({', '.join(quantized)}): shipped as given, "
                "not quantized again nor compared with an FP32 graph it does not have",
            ),
        }
    if mode is Quantization.NONE:
        metrics = {"backbone_latency_ms_fp32": latency_ms(personalizer.backbone, X=bench)[0]}
        return "fp32", {**metrics, "quantization": _record("none", mode, "none (FP32), as asked")}
    if mode is not Quantization.AUTO:
        int8, metrics = _measure(mode, backbone, work, personalizer, X, labels, validation, bench)
        if "validation_accuracy_int8" in metrics:
            check_quality_loss(
                metrics["validation_accuracy_fp32"],
                metrics["validation_accuracy_int8"],
                metrics["int8_identical_predictions"],
                len(validation),
                config,
            )
        shutil.copyfile(int8, backbone)
        return "int8", {**metrics, "quantization": _record(mode.value, mode, f"{mode.value}, as asked")}
    return _auto(backbone, work, personalizer, X, labels, validation, bench, config)


def _auto(
    backbone: Path,
    work: Path,
    personalizer: Personalizer,
    X: Any,
    labels: list[str] | None,
    validation: np.ndarray | None,
    bench: Any,
    config: ExportConfig,
) -> tuple[str, dict[str, Any]]:
    if X is None:
        fp32_ms = latency_ms(personalizer.backbone, X=bench)[0]
        return "fp32", {
            "backbone_latency_ms_fp32": fp32_ms,
            "quantization": _record(
                "none",
                Quantization.AUTO,
                "none (FP32): no server examples to measure INT8 against FP32 on; give --train-data to "
                "let auto judge INT8, or choose --quantize int8-dynamic",
            ),
        }
    fp32_bytes = backbone.stat().st_size
    margin = config.max_quality_loss
    candidates: dict[str, dict[str, Any]] = {}
    measured: dict[str, tuple[Path, dict[str, Any]]] = {}
    for mode in _INT8_MODES:
        try:
            measured[mode.value] = _measure(mode, backbone, work, personalizer, X, labels, validation, bench)
        except ExportError as e:  # a mode ORT cannot run is one auto does not ship, not a failed export
            candidates[mode.value] = {"error": str(e)}
            continue
        _, m = measured[mode.value]
        agreeing = round(m["int8_identical_predictions"] * len(X))
        bound = disagreement_bound(len(X) - agreeing, len(X), CONFIDENCE)
        candidates[mode.value] = {
            "backbone_bytes": m["backbone_bytes_int8"],
            "agreeing": agreeing,
            "examples": len(X),
            "loss_bound": bound,
            "within_margin": bound <= margin + 1e-9,
            "latency_ms": m["backbone_latency_ms_int8"],
        }
    fits = [name for name, c in candidates.items() if c.get("within_margin") and c["backbone_bytes"] < fp32_bytes]
    chosen = min(fits, key=lambda name: candidates[name]["backbone_bytes"], default=None)
    reason = _reason(chosen, candidates, fp32_bytes, len(X), margin)
    record = {
        **_record(chosen or "none", Quantization.AUTO, reason),
        "confidence": CONFIDENCE,
        "max_quality_loss": margin,
        "candidates": candidates,
    }
    if chosen is None:
        # Each measurement timed FP32 beside its INT8; without one that ran, FP32 is timed alone.
        fp32_ms = next((m["backbone_latency_ms_fp32"] for _, m in measured.values()), None)
        if fp32_ms is None:
            fp32_ms = latency_ms(personalizer.backbone, X=bench)[0]
        return "fp32", {"backbone_latency_ms_fp32": fp32_ms, "quantization": record}
    int8, metrics = measured[chosen]
    shutil.copyfile(int8, backbone)
    return "int8", {**metrics, "quantization": record}


def _measure(
    mode: Quantization,
    backbone: Path,
    work: Path,
    personalizer: Personalizer,
    X: Any,
    labels: list[str] | None,
    validation: np.ndarray | None,
    bench: Any,
) -> tuple[Path, dict[str, Any]]:
    """Quantize the backbone as ``mode`` says and measure it against FP32."""
    int8 = work / f"backbone-{mode.value}.onnx"
    calibration = None
    if X is not None:
        calibration = personalizer.backbone.batch_feeds(take(X, np.arange(min(len(X), _CALIBRATION_EXAMPLES))), 16)
    quantize_backbone(backbone, int8, mode, calibration)
    return int8, compare_precisions(personalizer, int8, bench, X, labels, validation)


def _record(mode: str, requested: Quantization, reason: str) -> dict[str, Any]:
    return {"mode": mode, "requested": requested.value, "reason": reason}


def _reason(chosen: str | None, candidates: dict[str, dict[str, Any]], fp32_bytes: int, n: int, margin: float) -> str:
    """Why auto chose what it did, in the figures it chose by."""

    def judged(name: str) -> str:
        c = candidates[name]
        if "error" in c:
            return f"{name} does not run ({c['error']})"
        verdict = "within" if c["within_margin"] else "over"
        return (
            f"{name} ({c['backbone_bytes'] / 1e6:.1f} MB) agreed with FP32 on {c['agreeing']}/{c['examples']} "
            f"server examples, so at {CONFIDENCE:.0%} confidence it loses at most {100 * c['loss_bound']:.1f} "
            f"accuracy points, {verdict} the {100 * margin:.1f} allowed"
        )

    figures = "; ".join(judged(name) for name in candidates)
    if chosen is not None:
        return f"{chosen} is the smallest backbone within the margin: {figures} (FP32: {fp32_bytes / 1e6:.1f} MB)"
    text = f"none (FP32, {fp32_bytes / 1e6:.1f} MB): no INT8 backbone is shown to be within the margin: {figures}"
    needed = examples_needed(margin, CONFIDENCE)
    if needed is not None and needed > n:
        text += (
            f". With {n} examples even full agreement bounds the loss at "
            f"{100 * disagreement_bound(0, n, CONFIDENCE):.1f} points only; {needed} agreeing examples "
            "bound it within the margin (more --train-data), or raise --max-quality-loss"
        )
    return text
