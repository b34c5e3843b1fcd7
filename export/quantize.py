"""Backbone quantization. Only the backbone: the head is a separate graph and stays FP32."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from edgeft.config import Quantization


def quantize_backbone(source: Path, target: Path, mode: Quantization) -> str:
    """Write the backbone at ``source`` to ``target`` in the precision ``mode`` asks for.

    Returns:
        The precision written: "fp32" or "int8".
    """
    if mode is Quantization.NONE:
        shutil.copyfile(source, target)
        return "fp32"
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic suggests shape pre-processing on every call; it changes nothing for MatMul weights.
    logging.getLogger("root").setLevel(logging.ERROR)
    quantize_dynamic(source, target, weight_type=QuantType.QInt8)
    return "int8"
