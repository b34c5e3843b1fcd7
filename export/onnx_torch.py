"""An ONNX graph run by torch, op by op, so that torch can differentiate it.

The step graphs (:mod:`export.step_graph`) differentiate the very model the ORT training artifacts are
generated from (a head, or a backbone's tail joined to it): same operators, same weight names, same
folded BatchNorms. Parsing the ONNX graph rather than re-using a torch module is what keeps the two
parameterisations one, for every adapter, ONNX-file backbones included.

Shape arithmetic (``Shape``, ``Gather`` of a shape, ``Concat`` of sizes ...) runs on numpy values, so it
folds to constants while tracing; float weights and activations are torch tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from edgeft.errors import ExportError

Value = Any  # a torch.Tensor (traced), or a numpy array (a constant the trace folds)
_OPS: dict[str, Callable[..., Any]] = {}


def op(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            _OPS[name] = fn
        return fn

    return register


def run_graph(
    model: onnx.ModelProto, feeds: dict[str, torch.Tensor], outputs: list[str], device: str | torch.device = "cpu"
) -> list[torch.Tensor]:
    """Evaluate ``model``'s graph in torch on ``feeds`` (which override initializers of the same name).

    Args:
        model: an ONNX model of the operators registered here.
        feeds: its inputs (and any initializers to replace), as tensors on ``device``.
        outputs: the names of the values to return.
        device: where the float weights go (the step graph traces on the CPU; tools/gpu_step_check.py runs on CUDA).

    Raises:
        ExportError: the graph uses an operator this interpreter does not know.
    """
    values: dict[str, Value] = {"": None}
    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        values[tensor.name] = torch.from_numpy(array.copy()).to(device) if array.dtype.kind == "f" else array
    values.update(feeds)
    for node in model.graph.node:
        fn = _OPS.get(node.op_type)
        if fn is None or node.domain not in ("", "ai.onnx"):
            raise ExportError(
                f"The step graph cannot differentiate ONNX operator {node.domain or 'ai.onnx'}.{node.op_type} "
                f"(node {node.name!r}); the ORT training artifacts still train this bundle (engine='ort')."
            )
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        args = [values.get(name) for name in node.input]
        result = fn(attrs, *args)
        for name, value in zip(node.output, result if isinstance(result, tuple) else (result,)):
            values[name] = value
    return [values[name] for name in outputs]


def _t(x: Value) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def _together(xs: tuple[Value, ...]) -> list[torch.Tensor]:
    """``xs`` as tensors on one device: constants (CPU) join the activations where those are (CUDA)."""
    device = next((x.device for x in xs if isinstance(x, torch.Tensor) and x.device.type != "cpu"), None)
    return [_t(x) if device is None else _t(x).to(device) for x in xs]


def _static(*xs: Value) -> bool:
    return all(x is None or isinstance(x, (np.ndarray, np.generic)) for x in xs)


def _elementwise(fn_np: Callable[..., Any], fn_torch: Callable[..., Any]) -> Callable[..., Any]:
    def apply(attrs: dict[str, Any], *xs: Value) -> Value:
        if fn_np is not None and _static(*xs):
            return np.asarray(fn_np(*xs))
        return fn_torch(*_together(xs))

    return apply


for _name, _np, _torch in [
    ("Add", np.add, torch.add),
    ("Sub", np.subtract, torch.sub),
    ("Mul", np.multiply, torch.mul),
    ("Div", lambda a, b: a // b if a.dtype.kind == "i" else a / b, torch.div),
    ("Pow", np.power, torch.pow),
    ("Equal", np.equal, torch.eq),
    ("Where", np.where, torch.where),
    ("Sqrt", np.sqrt, torch.sqrt),
    ("Erf", None, torch.erf),
    ("Tanh", np.tanh, torch.tanh),
    ("Sigmoid", None, torch.sigmoid),
    ("Relu", None, torch.relu),
    ("Neg", np.negative, torch.neg),
    ("Exp", np.exp, torch.exp),
    ("Log", np.log, torch.log),
    ("Abs", np.abs, torch.abs),
    ("Reciprocal", np.reciprocal, torch.reciprocal),
    ("Identity", lambda x: x, lambda x: x),
    ("MatMul", np.matmul, torch.matmul),
]:
    _OPS[_name] = _elementwise(_np, _torch)


@op("Cast")
def _cast(attrs: dict[str, Any], x: Value) -> Value:
    dtype = helper.tensor_dtype_to_np_dtype(attrs["to"])
    if _static(x):
        return np.asarray(x).astype(dtype)
    return x.to({np.dtype(np.float32): torch.float32, np.dtype(np.int64): torch.int64, np.dtype(np.bool_): torch.bool}[dtype])


@op("Shape")
def _shape(attrs: dict[str, Any], x: Value) -> np.ndarray:
    shape = np.array(x.shape, np.int64)
    return shape[attrs.get("start", 0) : attrs.get("end", len(shape))]


@op("Constant")
def _constant(attrs: dict[str, Any]) -> Value:
    array = numpy_helper.to_array(attrs["value"])
    return torch.from_numpy(array.copy()) if array.dtype.kind == "f" else array


@op("ConstantOfShape")
def _constant_of_shape(attrs: dict[str, Any], shape: np.ndarray) -> Value:
    value = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    filled = np.full(tuple(int(s) for s in shape), value.reshape(-1)[0], value.dtype)
    return torch.from_numpy(filled) if filled.dtype.kind == "f" else filled


@op("Gather")
def _gather(attrs: dict[str, Any], data: Value, indices: np.ndarray) -> Value:
    axis = attrs.get("axis", 0)
    if _static(data):
        return np.asarray(np.take(data, indices, axis=axis))
    size = data.shape[axis]
    index = torch.from_numpy(np.where(np.asarray(indices) < 0, np.asarray(indices) + size, indices).astype(np.int64))
    picked = torch.index_select(data, axis, index.reshape(-1).to(data.device))
    return picked.reshape(*data.shape[:axis], *np.shape(indices), *data.shape[axis + 1 :])


@op("Unsqueeze")
def _unsqueeze(attrs: dict[str, Any], x: Value, axes: np.ndarray) -> Value:
    out_rank = np.ndim(x) + len(axes)
    for axis in sorted(int(a) % out_rank for a in axes):
        x = np.expand_dims(x, axis) if _static(x) else x.unsqueeze(axis)
    return x


@op("Squeeze")
def _squeeze(attrs: dict[str, Any], x: Value, axes: np.ndarray | None = None) -> Value:
    dims = tuple(int(a) % np.ndim(x) for a in axes) if axes is not None else None
    if _static(x):
        return np.asarray(np.squeeze(x, dims))
    return x.squeeze(dims) if dims is not None else x.squeeze()


@op("Concat")
def _concat(attrs: dict[str, Any], *xs: Value) -> Value:
    if _static(*xs):
        return np.concatenate(xs, axis=attrs["axis"])
    return torch.cat(_together(xs), dim=attrs["axis"])


@op("Slice")
def _slice(
    attrs: dict[str, Any], x: Value, starts: np.ndarray, ends: np.ndarray, axes: Value = None, steps: Value = None
) -> Value:
    axes = range(len(starts)) if axes is None else axes
    steps = np.ones(len(starts), np.int64) if steps is None else steps
    index = [slice(None)] * np.ndim(x)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        size = x.shape[int(axis)]
        index[int(axis)] = slice(int(np.clip(start, -size, size)), int(np.clip(end, -size - 1, size)), int(step))
    return x[tuple(index)]


@op("Reshape")
def _reshape(attrs: dict[str, Any], x: Value, shape: np.ndarray) -> Value:
    target = [int(x.shape[i]) if s == 0 else int(s) for i, s in enumerate(shape)]
    return np.reshape(x, target) if _static(x) else x.reshape(target)


@op("Expand")
def _expand(attrs: dict[str, Any], x: Value, shape: np.ndarray) -> Value:
    if _static(x):
        return np.broadcast_to(x, np.broadcast_shapes(np.shape(x), tuple(shape))).copy()
    return x.expand(*np.broadcast_shapes(tuple(x.shape), tuple(int(s) for s in shape)))


@op("Transpose")
def _transpose(attrs: dict[str, Any], x: Value) -> Value:
    perm = attrs.get("perm", list(reversed(range(np.ndim(x)))))
    return np.transpose(x, perm) if _static(x) else x.permute(*perm)


@op("Flatten")
def _flatten(attrs: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    axis = attrs.get("axis", 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@op("Gemm")
def _gemm(attrs: dict[str, Any], a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    a = a.t() if attrs.get("transA") else a
    b = b.t() if attrs.get("transB") else b
    out = attrs.get("alpha", 1.0) * (a @ b)
    return out if c is None else out + attrs.get("beta", 1.0) * c


@op("Softmax")
def _softmax(attrs: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=attrs.get("axis", -1))


@op("Clip")
def _clip(attrs: dict[str, Any], x: torch.Tensor, low: Value = None, high: Value = None) -> torch.Tensor:
    low = None if low is None else float(np.asarray(low) if _static(low) else low.item())
    high = None if high is None else float(np.asarray(high) if _static(high) else high.item())
    return torch.clamp(x, low, high)


def _axes(attrs: dict[str, Any], x: Value, axes: Value) -> list[int] | None:
    if axes is None:
        axes = attrs.get("axes")
    return None if axes is None or len(axes) == 0 else [int(a) % np.ndim(x) for a in np.asarray(axes)]


@op("ReduceSum")
def _reduce_sum(attrs: dict[str, Any], x: Value, axes: Value = None) -> Value:
    dims, keep = _axes(attrs, x, axes), bool(attrs.get("keepdims", 1))
    if dims is None and attrs.get("noop_with_empty_axes"):
        return x
    if _static(x):
        return np.asarray(np.sum(x, axis=None if dims is None else tuple(dims), keepdims=keep))
    return x.sum(dim=dims, keepdim=keep) if dims is not None else x.sum()


@op("ReduceMean")
def _reduce_mean(attrs: dict[str, Any], x: torch.Tensor, axes: Value = None) -> torch.Tensor:
    dims, keep = _axes(attrs, x, axes), bool(attrs.get("keepdims", 1))
    return x.mean(dim=dims if dims is not None else list(range(x.ndim)), keepdim=keep)


@op("ReduceL2")
def _reduce_l2(attrs: dict[str, Any], x: torch.Tensor, axes: Value = None) -> torch.Tensor:
    dims, keep = _axes(attrs, x, axes), bool(attrs.get("keepdims", 1))
    return torch.sqrt((x * x).sum(dim=dims if dims is not None else list(range(x.ndim)), keepdim=keep))


@op("GlobalAveragePool")
def _global_average_pool(attrs: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=list(range(2, x.ndim)), keepdim=True)


@op("LayerNormalization")
def _layer_norm(attrs: dict[str, Any], x: torch.Tensor, scale: torch.Tensor, bias: Value = None) -> tuple[torch.Tensor, ...]:
    axis = attrs.get("axis", -1) % x.ndim
    dims = list(range(axis, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    centred = x - mean
    inv_std = torch.rsqrt((centred * centred).mean(dim=dims, keepdim=True) + attrs.get("epsilon", 1e-5))
    y = centred * inv_std * scale
    return (y if bias is None else y + bias), mean, inv_std


@op("Conv")
def _conv(attrs: dict[str, Any], x: torch.Tensor, w: torch.Tensor, b: Value = None) -> torch.Tensor:
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ExportError("Conv with auto_pad is not supported by the step graph; export with explicit pads.")
    n = w.ndim - 2
    pads = attrs.get("pads", [0] * 2 * n)
    begin, end = pads[:n], pads[n:]
    if list(begin) != list(end):
        x = torch.nn.functional.pad(x, [p for i in reversed(range(n)) for p in (begin[i], end[i])])
        begin = [0] * n
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[n]
    return conv(
        x,
        w,
        b,
        stride=attrs.get("strides", [1] * n),
        padding=list(begin),
        dilation=attrs.get("dilations", [1] * n),
        groups=attrs.get("group", 1),
    )


@op("Pad")
def _pad(attrs: dict[str, Any], x: torch.Tensor, pads: np.ndarray, value: Value = None, axes: Value = None) -> torch.Tensor:
    if attrs.get("mode", b"constant") not in (b"constant", "constant") or axes is not None:
        raise ExportError("Only constant Pad over every axis is supported by the step graph.")
    n = len(pads) // 2
    widths = [int(p) for i in reversed(range(n)) for p in (pads[i], pads[i + n])]
    fill = 0.0 if value is None else float(np.asarray(value) if _static(value) else value.item())
    return torch.nn.functional.pad(x, widths, value=fill)
