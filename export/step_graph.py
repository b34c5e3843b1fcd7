"""Training-step graphs: forward, backward and AdamW as one plain ONNX graph any onnxruntime runs.

ORT's training artifacts need onnxruntime-training, whose last release (1.19.2) has wheels for CPython
3.10-3.12 on x86-64 only and runs on the CPU only. A step graph needs an ``InferenceSession``: the step
is written once in torch over the very model the artifacts are generated from (:mod:`export.onnx_torch`
runs its ONNX graph), traced with ``make_fx`` under the core ATen decompositions, and exported by the
TorchScript exporter in standard ``ai.onnx`` operators (opset 17, IR 8).

That exporter bakes the traced batch size into reshapes; traced at two batch sizes, the step is made valid
for any batch (:mod:`export.step_batch`), and where it cannot be, it takes exactly ``head.step_batch`` rows:
the engine pads a smaller batch and gives padding rows weight 0 (the loss is the weighted mean, so padding
changes nothing). The evaluation graph is the forward model itself with the trainable weights as inputs,
valid for any batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from device_runtime.engines import l2sp
from device_runtime.engines import step_io as io_names
from device_runtime.engines.numpy_engine import BETA1, BETA2, EPS
from device_runtime.head_graph import IR_VERSION, OPSET
from edgeft.errors import ExportError
from edgeft.layout import STEP_EVAL_MODEL, STEP_MODEL
from edgeft.manifest import HeadSpec
from export.conv_backward import convolution_backward
from export.onnx_torch import run_graph
from export.step_batch import any_batch
from export.step_graph_warning import StepGraphWarning
from export.step_tidy import without_identities
from export.tracing import export_module


@dataclasses.dataclass(frozen=True)
class StepInputs:
    """The step function's inputs, in the graph's order."""

    trainable: list[str]
    penalized: list[str]

    @property
    def names(self) -> list[str]:
        return [
            *self.trainable,
            *map(io_names.first_moment, self.trainable),
            *map(io_names.second_moment, self.trainable),
            *map(io_names.anchor, self.penalized),
            io_names.FEATURES,
            io_names.TARGETS,
            io_names.ROW_WEIGHTS,
            io_names.STEP,
            io_names.LEARNING_RATE,
            io_names.WEIGHT_DECAY,
            io_names.L2SP_STRENGTH,
        ]

    @property
    def outputs(self) -> list[str]:
        moments = [*map(io_names.first_moment, self.trainable), *map(io_names.second_moment, self.trainable)]
        return [io_names.LOSS, *map(io_names.updated, self.trainable), *map(io_names.updated, moments)]


def step_function(
    model: onnx.ModelProto, inputs: StepInputs, device: str | torch.device = "cpu"
) -> Callable[..., tuple[torch.Tensor, ...]]:
    """One training step over ``model`` in torch: weighted cross-entropy + L2-SP, gradients, ORT's AdamW.

    AdamW as ORT's block and the numpy engine apply it (HF mode: bias correction folded into the step
    size, eps outside the square root, decoupled decay of the updated weights).
    """
    n = len(inputs.trainable)

    def step(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        params, m, v = args[:n], args[n : 2 * n], args[2 * n : 3 * n]
        anchors = args[3 * n : 3 * n + len(inputs.penalized)]
        features, targets, weights, t, lr, decay, strength = args[3 * n + len(inputs.penalized) :]
        named = dict(zip(inputs.trainable, params))
        logits = run_graph(model, {**named, io_names.FEATURES: features}, [io_names.LOGITS], device)[0]
        per_row = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        loss = (per_row * weights).sum() / weights.sum()
        for name, anchor in zip(inputs.penalized, anchors):
            drift = named[name] - anchor
            loss = loss + 0.5 * strength * (drift * drift).sum()
        grads = torch.autograd.grad(loss, params)
        step_size = lr * torch.sqrt(1 - BETA2**t) / (1 - BETA1**t)
        new_p, new_m, new_v = [], [], []
        for p, g, m1, m2 in zip(params, grads, m, v):
            m1 = BETA1 * m1 + (1 - BETA1) * g
            m2 = BETA2 * m2 + (1 - BETA2) * g * g
            p = p - step_size * m1 / (torch.sqrt(m2) + EPS)
            new_p.append(p - lr * decay * p)
            new_m.append(m1)
            new_v.append(m2)
        return (loss.detach(), *[x.detach() for x in (*new_p, *new_m, *new_v)])

    return step


def example_args(
    model: onnx.ModelProto, inputs: StepInputs, batch: int, seed: int = 0, classes: int | None = None
) -> list[torch.Tensor]:
    """Real-valued inputs of the step: the model's weights moved a little, random moments and a random batch of ``batch``
    rows, its targets among the first ``classes`` outputs (default: all)."""
    rng = np.random.default_rng(seed)
    weights = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}
    in_features = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    n_classes = classes or model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    # Moved off their initial values: a zero-initialised head passes no gradient down, and the parity check would not
    # see the backward pass of the layers below it (a fused bundle's blocks, LoRA's A beside a zero B).
    params = [weights[name] + rng.normal(0, 1e-2, weights[name].shape).astype(np.float32) for name in inputs.trainable]
    m = [rng.normal(0, 1e-3, p.shape).astype(np.float32) for p in params]
    v = [rng.uniform(0, 1e-5, p.shape).astype(np.float32) for p in params]
    anchors = [weights[name] + rng.normal(0, 1e-2, weights[name].shape).astype(np.float32) for name in inputs.penalized]
    batch_in = [
        rng.uniform(0, 1, (batch, in_features)).astype(np.float32),  # in [0, 1]: a text cut's mask channel must be
        rng.integers(0, n_classes, batch).astype(np.int64),
        (np.arange(batch) < max(1, batch - 1)).astype(np.float32),  # a padding row, as the device sends them
        np.float32(3.0),
        np.float32(1e-3),
        np.float32(1e-2),
        np.float32(0.1),
    ]
    tensors = [torch.from_numpy(np.asarray(a)) for a in (*params, *m, *v, *anchors, *batch_in)]
    for p in tensors[: len(params)]:
        p.requires_grad_()  # autograd.grad differentiates the step with respect to them
    return tensors


def _symbolics() -> None:
    """ONNX symbolic functions for the core ATen ops the TorchScript exporter lacks (seen with torch 2.13)."""
    from torch.onnx import register_custom_op_symbolic, symbolic_helper

    @symbolic_helper.parse_args("v", "i", "none")
    def softmax(g, x, dim, half_to_float):
        return g.op("Softmax", x, axis_i=dim)

    def to_copy(g, x, *args):
        dtype = args[0] if args else None
        if dtype is None or dtype.node().mustBeNone():
            return g.op("Identity", x)
        scalar = torch.onnx.symbolic_helper._get_const(dtype, "i", "dtype")
        return g.op("Cast", x, to_i=torch.onnx.JitScalarType(scalar).onnx_type())

    def alias(g, x):
        return g.op("Identity", x)

    register_custom_op_symbolic("aten::_softmax", softmax, OPSET)
    register_custom_op_symbolic("aten::_to_copy", to_copy, OPSET)
    for name in ("aten::alias", "aten::lift_fresh_copy", "aten::lift_fresh"):  # tensors made while tracing: constants
        register_custom_op_symbolic(name, alias, OPSET)


@contextlib.contextmanager
def _convolutions_without_kernel_shape() -> Iterator[None]:
    """While exporting a step: ``aten::_convolution`` (what tracing ``aten.convolution`` records) without the
    ``kernel_shape`` attribute, which ONNX reads from the weight. A weight's gradient is a convolution whose kernel is
    computed, of a shape torch's own symbolic cannot see. Only then: other exports in the process keep torch's."""
    from torch.onnx import register_custom_op_symbolic, symbolic_helper, unregister_custom_op_symbolic

    @symbolic_helper.parse_args("v", "v", "v", "is", "is", "is", "i", "is", "i", "none", "none", "none", "none")
    def convolution(g, x, w, b, stride, padding, dilation, transposed, output_padding, groups, *cudnn_flags):
        inputs = [x, w] if symbolic_helper._is_none(b) else [x, w, b]
        attrs = {"strides_i": stride, "pads_i": padding + padding, "dilations_i": dilation, "group_i": groups}
        if transposed:
            attrs["output_padding_i"] = output_padding
        return g.op("ConvTranspose" if transposed else "Conv", *inputs, **attrs)

    register_custom_op_symbolic("aten::_convolution", convolution, OPSET)
    try:
        yield
    finally:
        unregister_custom_op_symbolic("aten::_convolution", OPSET)


def trace_step(model: onnx.ModelProto, inputs: StepInputs, batch: int) -> onnx.ModelProto:
    """The step over ``model`` for ``batch`` rows, as an ONNX model of standard operators.

    Raises:
        ExportError: the graph has an operator :mod:`export.onnx_torch` cannot run, or the trace fails.
    """
    from torch._decomp import core_aten_decompositions
    from torch.fx.experimental.proxy_tensor import make_fx

    args = example_args(model, inputs, batch)
    _symbolics()
    buffer = io.BytesIO()
    try:
        table = {**core_aten_decompositions(), torch.ops.aten.convolution_backward.default: convolution_backward}
        traced = make_fx(step_function(model, inputs), decomposition_table=table)(*args)
        with _convolutions_without_kernel_shape():
            export_module(
                traced,
                tuple(args),
                buffer,
                input_names=inputs.names,
                output_names=inputs.outputs,
                what="the training step",
                dynamic_batch=False,  # export/step_batch.py makes the batch axes symbolic from two traces
            )
    except ExportError:
        raise
    except Exception as e:  # make_fx and the exporter raise many types; say which step failed
        raise ExportError(f"The training step could not be exported as ONNX: {type(e).__name__}: {e}") from e
    return _fixed(onnx.load_from_string(buffer.getvalue()))


def _fixed(model: onnx.ModelProto) -> onnx.ModelProto:
    """Reduction axes as int64 (some come out as float constants), and the IR version every supported ORT reads."""
    axes = {node.input[1] for node in model.graph.node if node.op_type.startswith("Reduce") and len(node.input) > 1}
    for tensor in model.graph.initializer:
        if tensor.name in axes and tensor.data_type != onnx.TensorProto.INT64:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.int64), tensor.name))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in axes:
            value = next(a for a in node.attribute if a.name == "value")
            if value.t.data_type != onnx.TensorProto.INT64:
                value.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(value.t).astype(np.int64)))
    model.ir_version = IR_VERSION
    return model


def eval_graph(model: onnx.ModelProto, trainable: list[str]) -> onnx.ModelProto:
    """``model`` with its trainable weights as graph inputs (same names): logits for any batch."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    weights = {t.name: t for t in model.graph.initializer}
    kept = [t for t in model.graph.initializer if t.name not in trainable]
    inputs = [helper.make_tensor_value_info(name, weights[name].data_type, list(weights[name].dims)) for name in trainable]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    model.graph.input.extend(inputs)
    del model.graph.output[1:]
    model.ir_version = IR_VERSION
    return model


def step_parity(
    step: onnx.ModelProto, model: onnx.ModelProto, inputs: StepInputs, batch: int, classes: int | None = None
) -> float:
    """The largest difference between the ONNX step (onnxruntime) and the torch step over the loss and every output,
    relative to the value where that is above 1 (float32 round-off grows with the values: a loss of 20 differs by
    about 1e-4); targets among the first ``classes`` outputs (a masked spare slot's loss is about 1e4)."""
    import onnxruntime as ort

    args = example_args(model, inputs, batch, seed=1, classes=classes)
    expected = step_function(model, inputs)(*args)
    try:
        session = ort.InferenceSession(step.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT's graph errors share no base class; say that the exported graph is invalid
        raise ExportError(f"onnxruntime refuses the exported training step: {type(e).__name__}: {e}") from e
    got = session.run(inputs.outputs, {name: a.detach().numpy() for name, a in zip(inputs.names, args)})
    return max(float((np.abs(g - e.numpy()) / np.maximum(1.0, np.abs(e.numpy()))).max()) for g, e in zip(got, expected))


def write_step_graphs(model: onnx.ModelProto, spec: HeadSpec, folder: Path, batch: int) -> tuple[HeadSpec, float | None]:
    """Write ``head/step_model.onnx`` and ``head/step_eval_model.onnx`` for ``model`` (the graph the artifacts train).

    Args:
        model: the head graph, or a tail joined to it: ``features`` in, ``logits`` out.
        spec: its head spec (the trainable weights).
        folder: the bundle folder.
        batch: rows per training step to trace at (the graph's fixed batch where it cannot take any).

    Returns:
        The spec with ``step_batch`` set, and the step's largest ONNX-vs-torch difference; the spec
        unchanged and None where the graph cannot be differentiated (a :class:`StepGraphWarning` says why).

    Raises:
        ExportError: the step graph was written but computes something else than torch does.
    """
    inputs = StepInputs(list(spec.trainable), l2sp.penalized(list(spec.trainable)))
    try:
        step, any_rows = any_batch(lambda rows: without_identities(trace_step(model, inputs, rows)), batch)
        classes = spec.out_features - spec.spare_labels
        batches = (batch, batch // 2 + 1) if any_rows else (batch,)
        parity = max(step_parity(step, model, inputs, rows, classes) for rows in batches)
    except ExportError as e:
        warnings.warn(f"{e} The bundle ships without step graphs.", StepGraphWarning, stacklevel=2)
        return spec, None
    if not math.isfinite(parity) or parity > 1e-3:
        raise ExportError(f"The ONNX training step differs from torch's by up to {parity:.2e}; the export is wrong.")
    (folder / STEP_MODEL).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(step, str(folder / STEP_MODEL))
    onnx.save(eval_graph(model, inputs.trainable), str(folder / STEP_EVAL_MODEL))
    return dataclasses.replace(spec, step_batch=batch), parity
