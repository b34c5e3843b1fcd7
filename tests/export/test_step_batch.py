"""Two traces of a graph at different batch sizes make one graph for any batch, or none where they differ otherwise."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.step_batch import batch_free
from export.step_tidy import without_identities


def _traced(rows: int, shape: list[int]) -> onnx.ModelProto:
    """What a trace at ``rows`` rows looks like: ``features`` (rows, 3) reshaped by a constant target, then copied."""
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["target"], value=numpy_helper.from_array(np.array(shape, np.int64))),
            helper.make_node("Reshape", ["features", "target"], ["flat"]),
            helper.make_node("Identity", ["flat"], ["out"]),
        ],
        "traced",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [rows, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, rows: int) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"features": np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)})[0]


def test_batch_sized_constants_are_computed_from_the_rows_fed():
    model = batch_free(_traced(4, [4 * 3]), _traced(5, [5 * 3]), batch=4)
    assert model is not None
    np.testing.assert_array_equal(_run(model, 7), np.arange(21, dtype=np.float32))


def test_a_constant_that_is_no_multiple_of_the_batch_keeps_the_fixed_batch():
    assert batch_free(_traced(4, [4 + 1, 3]), _traced(5, [5 + 1, 3]), batch=4) is None


def test_an_identity_that_produces_an_output_gives_way_to_its_input():
    model = without_identities(_traced(4, [12]))
    assert [node.op_type for node in model.graph.node] == ["Constant", "Reshape"]
    np.testing.assert_array_equal(_run(model, 4), np.arange(12, dtype=np.float32))
