"""An existing ONNX backbone file: pick its feature output and pool it, with onnx alone (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from device_runtime.head_graph import MAX_IR_VERSION
from edgeft.config import Pooling
from edgeft.errors import ExportError

FEATURES = "features"  # the name of the pooled output we add


def prepare_onnx_backbone(onnx_path: str | os.PathLike, target: Path, feature_output: str, pooling: Pooling) -> tuple[str, int]:
    """Write the backbone at ``onnx_path`` to ``target`` with one feature output.

    Args:
        onnx_path: the ONNX file (external data, if any, beside it).
        target: where to write the prepared graph.
        feature_output: the graph output holding the features.
        pooling: how that output becomes one vector per example.

    Returns:
        The name of the feature output in ``target`` and the feature size.

    Raises:
        ExportError: the file is not a loadable ONNX model, lacks the named
            output, has an output of the wrong rank for ``pooling``, or a
            feature size that is not fixed.
    """
    try:
        model = onnx.load(str(onnx_path))
    except Exception as e:  # onnx raises DecodeError, OSError and more for a bad file
        raise ExportError(f"{onnx_path} is not a readable ONNX model: {type(e).__name__}: {e}") from e
    if model.ir_version > MAX_IR_VERSION:
        raise ExportError(
            f"{onnx_path} has ONNX IR version {model.ir_version}; ONNX Runtime 1.19 reads {MAX_IR_VERSION} at most. "
            "Re-export it with an older exporter (torch.onnx.export(..., dynamo=False, opset_version=17))."
        )
    outputs = {o.name: o for o in model.graph.output}
    if feature_output not in outputs:
        raise ExportError(
            f"{onnx_path} has no output {feature_output!r}; its outputs are {sorted(outputs)}. "
            "Name the one that holds the features with --feature-output."
        )
    dims = outputs[feature_output].type.tensor_type.shape.dim
    expected_rank = 2 if pooling is Pooling.NONE else 3
    if len(dims) != expected_rank:
        hint = "pass --pooling mean or cls" if len(dims) == 3 else "pass --pooling none"
        raise ExportError(
            f"Output {feature_output!r} of {onnx_path} has rank {len(dims)}, but pooling {pooling.value!r} "
            f"needs rank {expected_rank}; {hint}."
        )
    name = feature_output
    if pooling is not Pooling.NONE:
        name = FEATURES
        _add_pooling(model, feature_output, pooling, dims[-1].dim_value or "hidden")
    # Only the feature output is kept: the device runs nothing else.
    keep = [o for o in model.graph.output if o.name == name]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    onnx.save(model, str(target))
    return name, feature_size(target, name)


def feature_size(model_path: str | os.PathLike, output: str) -> int:
    """The last dimension of ``output``: from the graph when it is fixed, else by running it once.

    Exporters often leave it symbolic (optimum's pooled ``sentence_embedding``
    is one), so a one-example probe with every free dimension set to 1 settles it.

    Raises:
        ExportError: the graph cannot run on the probe input.
    """
    import onnxruntime as ort

    model = onnx.load(str(model_path), load_external_data=False)
    dims = next(o for o in model.graph.output if o.name == output).type.tensor_type.shape.dim
    if dims and dims[-1].HasField("dim_value"):
        return dims[-1].dim_value
    try:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        feeds = {
            i.name: np.ones([d if isinstance(d, int) else 1 for d in i.shape], _NUMPY_TYPES.get(i.type, np.float32))
            for i in session.get_inputs()
        }
        return int(session.run([output], feeds)[0].shape[-1])
    except Exception as e:  # ORT's native errors share no base class worth naming
        raise ExportError(f"{model_path} does not run on a probe input ({e}); is it a complete backbone?") from e


_NUMPY_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}


def _add_pooling(model: onnx.ModelProto, tokens: str, pooling: Pooling, feature_size: int | str) -> None:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    graph = model.graph
    if pooling is Pooling.CLS:
        graph.initializer.append(numpy_helper.from_array(np.array(0, np.int64), "pool/first"))
        graph.node.append(helper.make_node("Gather", [tokens, "pool/first"], [FEATURES], axis=1, name="pool/cls"))
    else:
        inputs = {i.name for i in graph.input}
        if "attention_mask" not in inputs:
            raise ExportError(
                f"Mean pooling needs the graph input 'attention_mask' to skip padding; the inputs are "
                f"{sorted(inputs)}. Use --pooling cls, or an output that is already pooled."
            )
        graph.node.append(helper.make_node("Cast", ["attention_mask"], ["pool/mask"], to=TensorProto.FLOAT))
        graph.node.extend(_axes_node("Unsqueeze", "pool/mask", "pool/mask3", [-1], opset, graph))
        graph.node.append(helper.make_node("Mul", [tokens, "pool/mask3"], ["pool/masked"]))
        graph.node.extend(_axes_node("ReduceSum", "pool/masked", "pool/sum", [1], opset, graph, keepdims=0))
        graph.node.extend(_axes_node("ReduceSum", "pool/mask3", "pool/count", [1], opset, graph, keepdims=0))
        # An all-padding row would divide by zero; its mean is then 0 instead of NaN.
        graph.initializer.append(numpy_helper.from_array(np.array(1e-9, np.float32), "pool/eps"))
        graph.node.append(helper.make_node("Max", ["pool/count", "pool/eps"], ["pool/count_safe"]))
        graph.node.append(helper.make_node("Div", ["pool/sum", "pool/count_safe"], [FEATURES]))
    graph.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, ["batch", feature_size]))


def _axes_node(op: str, x: str, out: str, axes: list[int], opset: int, graph: onnx.GraphProto, **attrs: int) -> list:
    """``op`` with ``axes`` as an attribute (opset < 13) or as an input (opset >= 13)."""
    if opset < 13:
        return [helper.make_node(op, [x], [out], axes=axes, **attrs)]
    name = f"{out}/axes"
    graph.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), name))
    return [helper.make_node(op, [x, name], [out], **attrs)]


# Nodes that only a quantized graph holds: QDQ pairs (static), the dynamic quantizer's integer kernels,
# and the fused QLinear* / Q* operators of ORT's QOperator format.
_QUANTIZED_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
    "QAttention",
    "QGemm",
    "QEmbedLayerNormalization",
}
# Weights stored in these types are quantized weights; int32/int64 initializers are shapes and indices.
_QUANTIZED_WEIGHTS = {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT4, TensorProto.UINT4}


def quantization_evidence(model_path: str | os.PathLike) -> list[str]:
    """What marks the graph at ``model_path`` as already quantized; empty for a float graph.

    Returns:
        Sorted descriptions: the quantized operator types it holds (``QLinear*`` included), and
        ``"N int8/uint8 initializers"`` when it stores integer weights.
    """
    model = onnx.load(str(model_path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node if n.op_type in _QUANTIZED_OPS or n.op_type.startswith("QLinear")}
    evidence = sorted(ops)
    integer = sum(1 for t in model.graph.initializer if t.data_type in _QUANTIZED_WEIGHTS)
    if integer:
        evidence.append(f"{integer} int8/uint8 initializers")
    return evidence


def graph_inputs(model_path: str | os.PathLike) -> list[str]:
    """Names of the graph's real inputs (initializers listed as inputs are left out)."""
    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def input_shape(model_path: str | os.PathLike, name: str) -> list[int | None]:
    """The declared shape of graph input ``name``; None where a dimension is free (e.g. the batch)."""
    model = onnx.load(str(model_path), load_external_data=False)
    dims = next(i for i in model.graph.input if i.name == name).type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]
