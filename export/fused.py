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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgeft.config import ExportConfig
from edgeft.errors import ExportError
from edgeft.manifest import HeadSpec
from export.head import build_head
from export.tracing import export_module, largest_difference
from export.vision import INPUT, export_torch_backbone

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
    cut: DeviceCut,
    example_input: object,
    n_classes: int,
    config: ExportConfig,
    folder: Path,
    seed: int = 0,
    input_name: str = INPUT,
) -> FusedParts:
    """Export both parts of a cut backbone: the frozen part as the backbone, the tail joined to the head.

    Args:
        cut: the frozen part and the tail, from an adapter's ``device_cut`` (see ``export.adapters``).
        example_input: a tensor of one real input's shape: (1, 3, h, w) for images, (1, channels, steps) for windows.
        n_classes: outputs of the head.
        config: the head's kind, size and weight decay.
        folder: where the frozen part's FP32 ONNX file is written.
        seed: initializes an MLP head (:func:`export.head.build_head`).
        input_name: the frozen part's graph input (the device feeds it the preprocessed examples).

    Raises:
        ExportError: an exported part does not compute what torch does, or cannot be exported.
    """
    frozen, tail = cut.frozen.eval(), cut.tail.eval()
    with torch.no_grad():
        intermediate = frozen.activation(example_input)
    shape = list(intermediate.shape[1:])
    tail.shape = shape
    path = folder / "backbone.onnx"
    parity = export_torch_backbone(frozen, example_input, path, input_name=input_name)
    example = intermediate.flatten(1)
    pooled = export_tail(tail, example)
    with torch.no_grad():
        width = tail(example).shape[1]
    parity = max(parity, tail_parity(tail, pooled, example))
    model, spec = joined_head(pooled, width, shape, cut.blocks, n_classes, config, seed)
    return FusedParts(path, model, spec, shape, parity)


def joined_head(
    tail: onnx.ModelProto,
    pooled_size: int,
    shape: list[int],
    n_blocks: int,
    n_classes: int,
    config: ExportConfig,
    seed: int,
    frozen: Callable[[str], bool] = lambda name: False,
) -> tuple[onnx.ModelProto, HeadSpec]:
    """The tail's ONNX joined to a new head (:func:`export.head.build_head`), and the head spec that trains it.

    Args:
        tail: the tail's ONNX (:func:`export_tail`), flattened activation in, pooled features out.
        pooled_size: the pooled features' size (the head's input).
        shape: the activation's shape per example (the manifest's ``intermediate_shape``).
        n_blocks: backbone blocks in the tail (the manifest's ``head.backbone_blocks``).
        n_classes, config, seed: as for :func:`export.head.build_head`.
        frozen: which of the tail's float weights stay frozen; every other float weight trains.

    Returns:
        The joined model, and its spec with the trainable and frozen weights named.
    """
    head, spec = build_head(pooled_size, n_classes, config, seed=seed)
    tail_weights = {t.name for t in tail.graph.initializer}
    model = _joined(tail, head)
    trains = [
        t.name
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and not (t.name in tail_weights and frozen(t.name))
    ]
    spec = dataclasses.replace(
        spec,
        in_features=int(np.prod(shape)),
        trainable=trains,
        backbone_blocks=n_blocks,
        frozen=[t.name for t in model.graph.initializer if t.name not in trains],
    )
    return model, spec


def export_tail(tail: nn.Module, example: torch.Tensor, *, keep_names: bool = False) -> onnx.ModelProto:
    """The tail (activation in, pooled features out) as an FP32 ONNX model, IR 8 and opset 17 as the head.

    Args:
        tail: the tail module, eval mode.
        example: a flattened activation it takes.
        keep_names: no constant folding, so each weight keeps its module's name (a Linear's weight is not
            folded into a transposed copy named ``onnx::MatMul_156``); Conv+BatchNorm folding needs it off.
    """
    buffer = io.BytesIO()
    export_module(
        tail,
        (example,),
        buffer,
        input_names=[TAIL_INPUT],
        output_names=[_POOLED],
        what="the trainable tail",
        keep_names=keep_names,
    )
    model = _layer_norm_statistics(_named_weights(onnx.load_from_string(buffer.getvalue())))
    if keep_names:
        _check_every_weight_kept(tail, model)
    return model


def _check_every_weight_kept(tail: nn.Module, model: onnx.ModelProto) -> None:
    """In eval mode the exporter merges weights of equal value into one initializer, which would then train as one."""
    missing = sorted({name for name, _ in tail.named_parameters()} - {t.name for t in model.graph.initializer})
    if missing:
        raise ExportError(
            f"The tail's ONNX export merged or dropped weights {missing[:4]}{' ...' if len(missing) > 4 else ''}; "
            "weights of equal value become one initializer. Give them distinct values at export."
        )


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


def _layer_norm_statistics(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give each LayerNormalization its mean and inverse-std outputs, which ORT's gradient builder reads.

    Without them ``generate_artifacts`` fails deep in C++ (``i < node_->OutputDefs().size() was false``).
    """
    for node in model.graph.node:
        if node.op_type == "LayerNormalization" and len(node.output) == 1:
            node.output.extend([f"{node.name}/mean", f"{node.name}/inv_std_dev"])
    return model


def _joined(tail: onnx.ModelProto, head: onnx.ModelProto) -> onnx.ModelProto:
    """The tail's pooled features fed into the head :func:`export.head.build_head` made (its input renamed)."""
    for node in head.graph.node:
        node.input[:] = [_POOLED if name == TAIL_INPUT else name for name in node.input]
    head.graph.input[0].name = _POOLED
    tail.ir_version = head.ir_version
    return onnx.compose.merge_models(tail, head, io_map=[(_POOLED, _POOLED)])


def tail_parity(tail: nn.Module, model: onnx.ModelProto, example: torch.Tensor) -> float:
    """The largest difference between the tail's ONNX and torch pooled features."""
    with torch.no_grad():
        expected = tail(example).numpy()
    return largest_difference(model, {TAIL_INPUT: example.numpy()}, _POOLED, expected)
