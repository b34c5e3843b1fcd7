"""A step graph valid for any batch, from two traces at different batch sizes.

The TorchScript exporter writes every shape as a constant, so a traced step takes exactly the batch it was
traced with, and a device that trains on fewer rows would pay for the padding (8 rows padded to 32: four
times the work and the activations' memory). Traced twice, at ``b`` and ``b + 1`` rows, the two graphs are
the same but for the constants that hold the batch: each such element is ``k * b`` in the first and
``k * (b + 1)`` in the second. Those constants are rebuilt from the features' row count at run time
(``k * rows``), and every other element stays what it was; anything else that differs (a constant that is no
multiple of the batch, a changed operator) keeps the fixed batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from device_runtime.engines import step_io

ROWS = "step_batch.rows"  # the features' row count, an int64 scalar computed first
BATCH_AXES = {step_io.FEATURES, step_io.TARGETS, step_io.ROW_WEIGHTS}  # graph inputs whose first axis is the batch


def any_batch(trace: Callable[[int], onnx.ModelProto], batch: int) -> tuple[onnx.ModelProto, bool]:
    """The step traced at ``batch`` rows, made valid for any batch where the two traces allow it.

    Args:
        trace: the step graph traced for a number of rows.
        batch: the rows to trace at (and the fixed batch, where the graph cannot be made dynamic).

    Returns:
        The graph, and whether it takes any batch (False: exactly ``batch`` rows).
    """
    first = trace(batch)
    dynamic = batch_free(first, trace(batch + 1), batch)
    return (first, False) if dynamic is None else (dynamic, True)


def batch_free(first: onnx.ModelProto, second: onnx.ModelProto, batch: int) -> onnx.ModelProto | None:
    """``first`` (traced at ``batch`` rows) with its batch-sized constants computed from the rows fed; None if
    ``second`` (traced at ``batch + 1``) differs from it in anything but such constants."""
    if not _same_structure(first.graph, second.graph):
        return None
    scaled: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    filled: dict[str, np.ndarray] = {}  # a constant of one value whose shape holds the batch: the value, expanded
    for name, (a, b) in _constants(first.graph, second.graph).items():
        if a.dtype != b.dtype:
            return None
        if a.shape != b.shape:
            one_value = a.size and b.size and (a == a.flat[0]).all() and (b == a.flat[0]).all()
            shape = _per_row(np.array(a.shape, np.int64), np.array(b.shape, np.int64), batch) if one_value else None
            if shape is None:
                return None
            scaled[f"{name}.shape"], filled[name] = shape, a.flat[:1].reshape(())
        elif (a != b).any():
            scaled[name] = _per_row(a, b, batch)
            if scaled[name] is None:
                return None
    return _rebuilt(first, scaled, filled)


def _per_row(a: np.ndarray, b: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(per_row, fixed)`` with ``a == per_row * batch + fixed`` and ``b == per_row * (batch + 1) + fixed``, each element
    either a multiple of the batch or fixed; None where ``a`` and ``b`` are not so (or not integers)."""
    if a.shape != b.shape or a.dtype != np.int64:
        return None
    changed = a != b
    if (a[changed] % batch).any() or ((a[changed] // batch) * (batch + 1) != b[changed]).any():
        return None
    return np.where(changed, a // batch, 0), np.where(changed, 0, a)


def _same_structure(a: onnx.GraphProto, b: onnx.GraphProto) -> bool:
    """The same operators on the same values, with the same attributes but for Constant values."""
    if len(a.node) != len(b.node) or [i.name for i in a.initializer] != [i.name for i in b.initializer]:
        return False
    for x, y in zip(a.node, b.node):
        if (x.op_type, list(x.input), list(x.output)) != (y.op_type, list(y.input), list(y.output)):
            return False
        if x.op_type != "Constant" and list(x.attribute) != list(y.attribute):
            return False
    return True


def _constants(a: onnx.GraphProto, b: onnx.GraphProto) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every constant value by name (initializers and Constant nodes' outputs), as both graphs have it."""
    pairs = {x.name: (numpy_helper.to_array(x), numpy_helper.to_array(y)) for x, y in zip(a.initializer, b.initializer)}
    for x, y in zip(a.node, b.node):
        if x.op_type == "Constant":
            pairs[x.output[0]] = (_constant_value(x), _constant_value(y))
    return pairs


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    attribute = next(a for a in node.attribute if a.name.startswith("value"))
    if attribute.name != "value":  # value_float, value_ints ...: a plain number or list
        return np.asarray(helper.get_attribute_value(attribute))
    return numpy_helper.to_array(attribute.t)


def _rebuilt(
    model: onnx.ModelProto, scaled: dict[str, tuple[np.ndarray, np.ndarray]], filled: dict[str, np.ndarray]
) -> onnx.ModelProto:
    """``model`` with each of ``scaled``'s values computed as ``per_row * rows + fixed``, each of ``filled``'s as its
    value expanded to its scaled shape, and symbolic batch axes."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    nodes = [
        helper.make_node("Shape", [step_io.FEATURES], [f"{ROWS}.shape"], start=0, end=1),
        helper.make_node("Squeeze", [f"{ROWS}.shape", f"{ROWS}.axis"], [ROWS]),
    ]
    added = [numpy_helper.from_array(np.array([0], np.int64), f"{ROWS}.axis")]
    for name, (per_row, fixed) in scaled.items():
        added += [numpy_helper.from_array(per_row, f"{name}.per_row"), numpy_helper.from_array(fixed, f"{name}.fixed")]
        nodes += [
            helper.make_node("Mul", [f"{name}.per_row", ROWS], [f"{name}.scaled"]),
            helper.make_node("Add", [f"{name}.scaled", f"{name}.fixed"], [name]),
        ]
    for name, value in filled.items():
        added.append(numpy_helper.from_array(value, f"{name}.value"))
        nodes.append(helper.make_node("Expand", [f"{name}.value", f"{name}.shape"], [name]))
    replaced = {*scaled, *filled}
    kept_initializers = [t for t in graph.initializer if t.name not in replaced]
    kept_nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in replaced)]
    del graph.initializer[:], graph.node[:], graph.value_info[:]
    graph.initializer.extend([*kept_initializers, *added])
    graph.node.extend([*nodes, *kept_nodes])
    for value in graph.input:
        if value.name in BATCH_AXES:
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return model
