"""Backbone quantization. Only the backbone: the head is a separate graph and stays FP32."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx

from edgeft.config import Quantization
from edgeft.errors import ExportError


def quantize_backbone(
    source: Path, target: Path, mode: Quantization, calibration: Iterable[dict[str, np.ndarray]] | None = None
) -> str:
    """Write the backbone at ``source`` to ``target`` in the precision ``mode`` asks for.

    Args:
        source: the FP32 backbone.
        target: where to write the result.
        mode: none, int8-dynamic, or int8-static.
        calibration: input feeds of server examples, one dict per batch;
            int8-static sets its activation ranges from them.

    Returns:
        The precision written: "fp32" or "int8".

    Raises:
        ExportError: int8-static was asked for without calibration data.
    """
    if mode is Quantization.NONE:
        shutil.copyfile(source, target)
        return "fp32"
    from onnxruntime import quantization as q

    # The quantizers suggest shape pre-processing on every call; it changes nothing for MatMul weights.
    logging.getLogger("root").setLevel(logging.ERROR)
    if mode is Quantization.INT8_DYNAMIC:
        # ORT's CPU ConvInteger kernel takes uint8 weights only; MatMul-only graphs keep int8.
        has_conv = any(node.op_type == "Conv" for node in onnx.load(str(source), load_external_data=False).graph.node)
        q.quantize_dynamic(source, target, weight_type=q.QuantType.QUInt8 if has_conv else q.QuantType.QInt8)
        return "int8"
    if calibration is None:
        raise ExportError("int8-static calibrates activation ranges on server data: give --train-data, or use int8-dynamic.")

    class _Reader(q.CalibrationDataReader):
        def __init__(self, feeds: Iterator[dict[str, np.ndarray]]) -> None:
            self._feeds = feeds

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    # QDQ works here because the backbone stays its own inference model, apart from the head's
    # training artifacts (a QDQ graph inside generate_artifacts fails on its zero points).
    q.quantize_static(
        source,
        target,
        _Reader(iter(calibration)),
        quant_format=q.QuantFormat.QDQ,
        activation_type=q.QuantType.QInt8,
        weight_type=q.QuantType.QInt8,
    )
    return "int8"
