"""Fused bundles: the backbone cut in two, its last N blocks trained on the device with the head.

Where a backbone is cut is its adapter's knowledge (``device_cut`` in ``export.adapters``); what is
done with the two parts is the same for every architecture, and lives here.

The frozen part (stem and the lower blocks) becomes the bundle's backbone, an
inference model like any other, quantized as configured; its output is the
intermediate activation, flattened to one vector per example so the device
caches it as it caches pooled features. The tail (the last N blocks, the top
and the pooling) is exported in FP32, joined to the head graph that
``export.head.build_head`` makes for every bundle, and becomes the head's
training artifacts: it reshapes that vector back and trains forward and
backward every step.

Both parts are exported in eval mode: the TorchScript exporter then folds each
BatchNorm into the Conv before it, so BatchNorm keeps its running statistics
and only weights (the folded scale and shift included) train.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgeft.bundle import HeadSpec
from edgeft.config import ExportConfig
from edgeft.errors import ExportError
from export.head import OPSET, build_head
from export.vision import export_torch_backbone

# The tail's graph input, as the head's artifacts name it (build_head's input name).
TAIL_INPUT = "features"
_POOLED = "pooled_features"  # where the tail's convolutions end and the head begins


@dataclasses.dataclass(frozen=True)
class FusedParts:
    """The frozen part as an FP32 ONNX file, and the tail with its head as training-ready ONNX."""

    frozen: Path
    tail: onnx.ModelProto
    head_spec: HeadSpec
    intermediate_shape: list[int]
    parity: float  # the largest ONNX-vs-torch difference over both parts


class CutFrozen(nn.Module):
    """The frozen part of a cut backbone: an adapter defines ``activation``; the device caches it flattened."""

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x).flatten(1)


class CutTail(nn.Module):
    """The trainable tail of a cut backbone: the flattened activation back to its shape, then ``pooled``.

    An adapter defines ``pooled`` (its last blocks, its top and pooling) and keeps the tail's modules as
    attributes of the subclass itself, so the ONNX weight names are the subclass's module paths.
    """

    def __init__(self) -> None:
        super().__init__()
        self.shape: list[int] = []

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(x.reshape(-1, *self.shape))


@dataclasses.dataclass(frozen=True)
class DeviceCut:
    """A backbone cut after its ``-blocks``-th block, as an adapter's ``device_cut`` returns it."""

    frozen: CutFrozen
    tail: CutTail
    blocks: int  # N, the trainable blocks in the tail


def export_fused(
    cut: DeviceCut, example_input: object, n_classes: int, config: ExportConfig, folder: Path, seed: int = 0
) -> FusedParts:
    """Export both parts of a cut backbone: the frozen part as the backbone, the tail joined to the head.

    Args:
        cut: the frozen part and the tail, from an adapter's ``device_cut`` (see ``export.adapters``).
        example_input: a (1, 3, h, w) tensor of a real input's shape.
        n_classes: outputs of the head.
        config: the head's kind, size and weight decay.
        folder: where the frozen part's FP32 ONNX file is written.
        seed: initializes an MLP head (:func:`export.head.build_head`).

    Raises:
        ExportError: an exported part does not compute what torch does, or cannot be exported.
    """
    frozen, tail = cut.frozen.eval(), cut.tail.eval()
    with torch.no_grad():
        intermediate = frozen.activation(example_input)
    shape = list(intermediate.shape[1:])
    tail.shape = shape
    path = folder / "backbone.onnx"
    parity = export_torch_backbone(frozen, example_input, path)
    example = intermediate.flatten(1)
    pooled = _export_tail(tail, example)
    with torch.no_grad():
        width = tail(example).shape[1]
    parity = max(parity, _tail_parity(tail, pooled, example))
    head, spec = build_head(width, n_classes, config, seed=seed)
    model = _joined(pooled, head)
    floats = [t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    spec = dataclasses.replace(
        spec, in_features=int(np.prod(shape)), trainable=floats, backbone_blocks=cut.blocks,
        frozen=[t.name for t in model.graph.initializer if t.name not in floats],
    )
    return FusedParts(path, model, spec, shape, parity)


def _export_tail(tail: CutTail, example: torch.Tensor) -> onnx.ModelProto:
    """The tail (activation in, pooled features out) as an FP32 ONNX model, IR 8 and opset 17 as the head."""
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                tail, (example,), buffer, input_names=[TAIL_INPUT], output_names=[_POOLED],
                dynamic_axes={TAIL_INPUT: {0: "batch"}, _POOLED: {0: "batch"}}, opset_version=OPSET, dynamo=False,
            )
    except Exception as e:  # the tracer raises many types; say which part failed and why
        raise ExportError(f"torch.onnx.export failed for the trainable tail: {type(e).__name__}: {e}") from e
    return _named_weights(onnx.load_from_string(buffer.getvalue()))


def _named_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Name each Conv's folded weight and bias after its module (``blocks.15._expand_conv.weight``).

    The exporter gives folded Conv+BatchNorm weights names like ``onnx::Conv_73``,
    which say nothing in ``head_parameters()``.
    """
    names = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            scope = node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
            for old, kind in zip(node.input[1:], ("weight", "bias")):
                names[old] = f"{scope}.{kind}"
    for tensor in model.graph.initializer:
        tensor.name = names.get(tensor.name, tensor.name)
    for node in model.graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
    return model


def _joined(tail: onnx.ModelProto, head: onnx.ModelProto) -> onnx.ModelProto:
    """The tail's pooled features fed into the head :func:`export.head.build_head` made (its input renamed)."""
    for node in head.graph.node:
        node.input[:] = [_POOLED if name == TAIL_INPUT else name for name in node.input]
    head.graph.input[0].name = _POOLED
    tail.ir_version = head.ir_version
    return onnx.compose.merge_models(tail, head, io_map=[(_POOLED, _POOLED)])


def _tail_parity(tail: CutTail, model: onnx.ModelProto, example: torch.Tensor) -> float:
    """The largest difference between the tail's ONNX and torch pooled features."""
    import onnxruntime as ort

    with torch.no_grad():
        expected = tail(example).numpy()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run([_POOLED], {TAIL_INPUT: example.numpy()})[0]
    return float(np.abs(got - expected).max())
