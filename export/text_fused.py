"""Text bundles cut in two: the last N layers of a BERT-like encoder train on the device with the head.

The frozen part (the embeddings and the first L-N layers) becomes the bundle's
backbone, quantized as configured. It reads texts padded to ``max_length`` and
outputs, per example, the hidden states at the cut with the attention mask as
one more channel, channels first (``intermediate_shape = [hidden + 1,
max_length]``) and flattened: the device caches that vector as it caches
pooled features, and the tail needs the mask to attend and to pool.

The tail (the last N layers, mean pooling over the mask and L2 normalization,
sentence-transformers' recipe, :func:`export.pooling.mean_pooled`) is
exported in FP32 and joined to the head by :mod:`export.fused`'s machinery.
With ``device_lora_rank`` R, the tail's attention projections (query, key,
value and the attention output) get LoRA adapters and only those and the head
train.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from edgeft.config import ExportConfig
from edgeft.errors import ExportError
from export.adapters.base import check_block_count
from export.fused import CutTail, FusedParts, export_tail, joined_head, tail_parity
from export.pooling import mean_pooled
from export.tracing import export_module, largest_difference

INPUTS = ["input_ids", "attention_mask"]  # token types are all 0 for one text; the embeddings default to that
OUTPUT = "hidden_states_and_mask"
# LoRA's alpha, so the update is scaled by alpha / rank: PEFT's default alpha.
LORA_ALPHA = 8.0
# The Linear layers of a BERT layer that get LoRA adapters: the attention's projections.
LORA_TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")


def load_encoder(model_dir: str | os.PathLike) -> nn.Module:
    """The encoder at ``model_dir`` (transformers AutoModel), eval mode, eager attention (plain MatMul/Softmax).

    Raises:
        ExportError: the folder does not load, or the model has no BERT-like ``embeddings`` and ``encoder.layer``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a bundle is built from local files only
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    except Exception as e:  # transformers raises many types; say which folder failed
        raise ExportError(f"transformers could not load {model_dir}: {type(e).__name__}: {e}") from e
    if not hasattr(model, "embeddings") or not isinstance(getattr(getattr(model, "encoder", None), "layer", None), nn.ModuleList):
        raise ExportError(
            f"--device-trainable-blocks supports BERT-like encoders (embeddings + encoder.layer), not "
            f"{type(model).__name__}; export it with --device-trainable-blocks 0."
        )
    return model


def check_cuttable(n_layers: int, config: ExportConfig) -> None:
    """Refuse an N (and a LoRA rank) that a text cut cannot be built for, before any slow work.

    Raises:
        ExportError: LoRA is asked for on every layer, or N is not between 1 and ``n_layers - 1``.
    """
    n = config.device_trainable_blocks
    if config.device_lora_rank and n >= n_layers:
        raise ExportError(
            f"LoRA on every layer (device_trainable_blocks={n} of {n_layers}) is refused: adapters on the INT8 "
            "frozen part need gradients through its quantized ops, which ONNX Runtime has none for (generate_artifacts: "
            "'The gradient builder has not been registered: DynamicQuantizeLinear'), and moving every layer into the "
            "FP32 tail leaves no frozen part to quantize and cache. Put LoRA on the last layers only "
            f"(--device-trainable-blocks 1 to {n_layers - 1} with --device-lora)."
        )
    check_block_count(n, n_layers)


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens) 0/1 mask -> the (batch, 1, 1, tokens) additive mask BERT's eager attention takes."""
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


class _Frozen(nn.Module):
    """The embeddings and the first layers; out come the hidden states and the mask, channels first, flattened."""

    def __init__(self, model: nn.Module, n_tail: int) -> None:
        super().__init__()
        layers = model.encoder.layer
        self.embeddings, self.layers = model.embeddings, layers[: len(layers) - n_tail]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids=input_ids)
        additive = additive_mask(attention_mask)
        for layer in self.layers:
            x = layer(x, attention_mask=additive)[0]
        with_mask = torch.cat([x, attention_mask.unsqueeze(-1).to(x.dtype)], dim=-1)
        return with_mask.transpose(1, 2).flatten(1)


class TextTail(CutTail):
    """The hidden states and mask (CutTail restores them channels first), the last layers, mean pooling, L2."""

    def __init__(self, model: nn.Module, n_tail: int, shape: list[int]) -> None:
        super().__init__()
        layers = model.encoder.layer
        first = len(layers) - n_tail
        # Keyed by the layer's index in the whole encoder, so ONNX names say which layer a weight is.
        self.blocks = nn.ModuleDict({str(i): layers[i] for i in range(first, len(layers))})
        self.shape = list(shape)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        tokens, mask = x[..., :-1], x[..., -1]
        additive = additive_mask(mask)
        for block in self.blocks.values():
            tokens = block(tokens, attention_mask=additive)[0]
        return mean_pooled(tokens, mask)


class LoRALinear(nn.Module):
    """``base(x) + alpha / rank * x A^T B^T``: A small and random (seeded), B zero, so it starts as ``base``."""

    def __init__(self, base: nn.Linear, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        self.base, self.scale = base, LORA_ALPHA / rank
        # Kaiming-uniform A as PEFT initializes it (bound 1/sqrt(in_features)).
        bound = 1.0 / np.sqrt(base.in_features)
        self.lora_A = nn.Parameter((torch.rand(rank, base.in_features, generator=generator) * 2 - 1) * bound)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


def add_lora(tail: nn.Module, rank: int, seed: int) -> None:
    """Wrap each of the tail's :data:`LORA_TARGETS` in a :class:`LoRALinear`, in place."""
    generator = torch.Generator().manual_seed(seed)
    for block in tail.blocks.values():
        for path in LORA_TARGETS:
            parent, name = path.rsplit(".", 1)
            owner = block.get_submodule(parent)
            setattr(owner, name, LoRALinear(getattr(owner, name), rank, generator))


def export_text_fused(
    model: nn.Module, texts: list[str], tokenizer: object, n_classes: int, config: ExportConfig, folder: Path, seed: int = 0
) -> FusedParts:
    """Cut a BERT-like encoder (:func:`load_encoder`) before its last N layers and export both parts.

    Args:
        model: the encoder; a LoRA export wraps its tail's projections in place.
        texts: a few real texts, for the example input and the parity check.
        tokenizer: the model's transformers tokenizer.
        n_classes: outputs of the head.
        config: ``device_trainable_blocks`` (N), ``device_lora_rank``, ``max_length`` and the head's settings.
        folder: where the frozen part's FP32 ONNX file is written.
        seed: initializes LoRA's A and an MLP head.

    Returns:
        The parts; with LoRA only the adapters and the head are in ``head_spec.trainable``.

    Raises:
        ExportError: N does not fit the encoder, or an exported part does not compute what torch does.
    """
    n = config.device_trainable_blocks
    check_cuttable(len(model.encoder.layer), config)
    feeds = tokenizer(texts, padding="max_length", truncation=True, max_length=config.max_length, return_tensors="pt")
    inputs = tuple(feeds[name] for name in INPUTS)
    frozen = _Frozen(model, n).eval()
    path = folder / "backbone.onnx"
    parity = _export_frozen(frozen, inputs, path)
    with torch.no_grad():
        example = frozen(*inputs)
    shape = [model.config.hidden_size + 1, config.max_length]
    tail = TextTail(model, n, shape).eval()
    if config.device_lora_rank:
        add_lora(tail, config.device_lora_rank, seed)
        pooled = _export_lora_tail(tail, example)
    else:
        pooled = export_tail(tail, example, keep_names=True)
    parity = max(parity, tail_parity(tail, pooled, example))
    frozen_weight = (lambda name: "lora_" not in name) if config.device_lora_rank else (lambda name: False)
    model_proto, spec = joined_head(pooled, model.config.hidden_size, shape, n, n_classes, config, seed, frozen_weight)
    spec = dataclasses.replace(spec, lora_rank=config.device_lora_rank)
    return FusedParts(path, model_proto, spec, shape, parity)


def _export_lora_tail(tail: TextTail, example: torch.Tensor) -> onnx.ModelProto:
    """:func:`export.fused.export_tail` with every LoRA B its own zero weight.

    The exporter merges initializers of equal value, so the all-zero B matrices would become one
    shared weight: they are exported holding distinct values and zeroed after, in torch and in ONNX.
    """
    lora = [m for m in tail.modules() if isinstance(m, LoRALinear)]
    with torch.no_grad():
        for i, module in enumerate(lora):
            module.lora_B.fill_(i + 1.0)
    model = export_tail(tail, example, keep_names=True)
    with torch.no_grad():
        for module in lora:
            module.lora_B.zero_()
    for tensor in model.graph.initializer:
        if tensor.name.endswith(".lora_B"):
            tensor.CopyFrom(numpy_helper.from_array(np.zeros(tuple(tensor.dims), np.float32), tensor.name))
    return model


def _export_frozen(frozen: _Frozen, inputs: tuple[torch.Tensor, ...], path: Path) -> float:
    """Export the frozen part (batch dynamic, tokens fixed at max_length); its largest ONNX-vs-torch difference."""
    export_module(frozen, inputs, path, input_names=INPUTS, output_names=[OUTPUT], what="the frozen part")
    with torch.no_grad():
        expected = frozen(*inputs).numpy()
    return largest_difference(path, {name: t.numpy() for name, t in zip(INPUTS, inputs)}, OUTPUT, expected)


def save_tokenizer(tokenizer: object, folder: Path) -> Path:
    """The tokenizer's tokenizer.json, written into ``folder``.

    Raises:
        ExportError: the tokenizer is not a fast one (no tokenizer.json), which the device needs.
    """
    tokenizer.save_pretrained(str(folder))
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ExportError("The model has no fast tokenizer (tokenizer.json); the device needs one to read text.")
    return path


def check_folder(model_dir: str | os.PathLike, config: ExportConfig) -> None:
    """:func:`check_cuttable` on the layer count in the folder's config.json, without loading the weights.

    Raises:
        ExportError: as for :func:`check_cuttable`, or config.json names no ``num_hidden_layers``.
    """
    path = Path(model_dir) / "config.json"
    layers = json.loads(path.read_text()).get("num_hidden_layers") if path.is_file() else None
    if not isinstance(layers, int):
        raise ExportError(
            f"{path} names no num_hidden_layers: --device-trainable-blocks needs a BERT-like encoder folder "
            "(config.json, weights, tokenizer.json)."
        )
    check_cuttable(layers, config)


def export_text_cut(
    model_dir: str | os.PathLike, texts: list[str], n_classes: int, config: ExportConfig, work: Path, seed: int
) -> tuple[FusedParts, Path]:
    """Load the encoder and tokenizer at ``model_dir`` and :func:`export_text_fused` them into ``work``.

    Returns:
        The parts, and the tokenizer.json the device reads.
    """
    from transformers import AutoTokenizer

    model = load_encoder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    parts = export_text_fused(model, texts, tokenizer, n_classes, config, work, seed)
    return parts, save_tokenizer(tokenizer, work / "tokenizer")
