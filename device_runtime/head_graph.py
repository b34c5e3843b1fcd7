"""The head's one specification: its parameter names, its ONNX graph, and the opset and IR it is written at.

The exporter builds the shipped head with :func:`head_model`, the device writes a personalized head with it,
and both name the parameters as :func:`layer_names` does, so a head trained on either side merges with the
backbone and reads back on the other.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgeft.errors import ExportError

OPSET = 17
IR_VERSION = 8  # ORT 1.19.2 reads IR 10 at most; onnx would otherwise write its own (1.16: 9/10, 1.23: 14)
MAX_IR_VERSION = 10  # the newest IR onnxruntime-training 1.19.2 (the oldest supported onnxruntime) reads

LINEAR_LAYERS = [("head.weight", "head.bias")]
MLP_LAYERS = [("head.hidden.weight", "head.hidden.bias"), ("head.out.weight", "head.out.bias")]


def layer_names(kind: str) -> list[tuple[str, str]]:
    """(weight, bias) names of each layer of a ``"linear"`` or ``"mlp"`` head, input side first."""
    return list(LINEAR_LAYERS if kind == "linear" else MLP_LAYERS)


def output_layer(parameter_names: list[str]) -> tuple[str, str]:
    """The names of the head's output layer weight and bias."""
    return MLP_LAYERS[-1] if MLP_LAYERS[-1][0] in parameter_names else LINEAR_LAYERS[0]


def head_model(layers: list[tuple[str, str]], params: dict[str, np.ndarray]) -> Any:
    """``features -> logits`` (Gemm per layer, ReLU between) with ``params``, as an ``onnx.ModelProto``.

    Raises:
        ExportError: the ``onnx`` package is not installed.
    """
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:
        raise ExportError("Writing the head's graph needs the onnx package (pip install onnx).") from e
    nodes, x = [], "features"
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        out = "logits" if last else f"hidden{i}"
        nodes.append(helper.make_node("Gemm", [x, w, b], [out if last else f"{out}_pre"], transB=1, name=f"head/Gemm{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [f"{out}_pre"], [out], name=f"head/Relu{i}"))
        x = out
    in_features = params[layers[0][0]].shape[1]
    n_classes = params[layers[-1][0]].shape[0]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes])],
        [numpy_helper.from_array(np.asarray(params[name], np.float32), name) for layer in layers for name in layer],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def head_inference_model(layers: list[tuple[str, str]], params: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write :func:`head_model` of ``params`` to ``path`` (same errors)."""
    model = head_model(layers, params)  # raises the ExportError that names onnx where it is missing
    import onnx

    onnx.save(model, str(path))
