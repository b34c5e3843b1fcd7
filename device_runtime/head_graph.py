"""The head as a plain ONNX inference graph, built from numpy parameters."""

from __future__ import annotations

import os

import numpy as np

from edgeft.errors import ExportError

OPSET = 17
IR_VERSION = 8  # what the exporter writes, so the head merges with the backbone


def head_inference_model(layers: list[tuple[str, str]], params: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write ``features -> logits`` (Gemm per layer, ReLU between) with ``params`` to ``path``.

    Raises:
        ExportError: the ``onnx`` package is not installed.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:
        raise ExportError("Exporting an inference model needs the onnx package (pip install onnx).") from e
    nodes, x = [], "features"
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        out = "logits" if last else f"hidden{i}"
        nodes.append(helper.make_node("Gemm", [x, w, b], [out if last else f"{out}_pre"], transB=1))
        if not last:
            nodes.append(helper.make_node("Relu", [f"{out}_pre"], [out]))
        x = out
    in_features = params[layers[0][0]].shape[1]
    n_classes = params[layers[-1][0]].shape[0]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in params.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))
