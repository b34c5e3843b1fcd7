"""A Hugging Face / sentence-transformers text model folder: exported by optimum, pooled as sentence-transformers does.

A block is one encoder layer (``model.encoder.layer``); the stem is the embeddings. The device cut of a
BERT-like encoder (``export_cut``) goes before its last N layers, as :mod:`export.text_fused` builds it:
the frozen part outputs the hidden states and the attention mask, the tail pools them (with LoRA adapters
on its attention where ``device_lora_rank`` asks).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeft import layout
from edgeft.config import ExportConfig
from edgeft.manifest import InputSpec
from export.adapters.base import TEXT_SAMPLE, Adapter, ExportedBackbone
from export.onnx_file import graph_inputs
from export.text import SENTENCE_OUTPUT, export_text_backbone, text_parity

if TYPE_CHECKING:
    from export.finetune import FineTunable


class TransformerText(Adapter):
    """A folder holding config.json, the weights and tokenizer.json (any BERT-like encoder optimum exports)."""

    name = "transformer-text"
    kind = "text models (Hugging Face / sentence-transformers folders)"
    fine_tunes = True
    cuts = True

    @classmethod
    def matches(cls, source: Any) -> bool:
        return isinstance(source, (str, os.PathLike)) and Path(source).is_dir()

    @property
    def modality(self) -> str:
        return "text"

    @property
    def default_name(self) -> str:
        return Path(self.source).name

    @property
    def origin(self) -> str:
        # The name alone: a workstation's folders mean nothing on a device, and can say more than they should.
        return Path(self.source).name

    def export_onnx(self, work: Path, X: Any, config: ExportConfig) -> ExportedBackbone:
        fp32, tokenizer = export_text_backbone(self.source, work / "onnx")
        parity = text_parity(self.source, fp32, list((X or TEXT_SAMPLE)[:4]), config.max_length)
        return ExportedBackbone(fp32, SENTENCE_OUTPUT, parity, extra_files={layout.TOKENIZER: tokenizer})

    def input_spec(self, fp32: Path, config: ExportConfig) -> InputSpec:
        return InputSpec(
            modality="text", input_names=graph_inputs(fp32), tokenizer=layout.TOKENIZER, max_length=config.max_length
        )

    def tunable(self, config: ExportConfig) -> Callable[[], FineTunable]:
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(self.source))
        return lambda: transformer_tunable(AutoModel.from_pretrained(str(self.source)), tokenizer, config.max_length)

    def adopt(self, tuned: FineTunable, work: Path) -> None:
        self.source = save_text_model(tuned, self.source, work / "tuned")

    def check_cut(self, config: ExportConfig) -> None:
        from export.text_fused import check_folder

        check_folder(self.source, config)  # reads config.json only: before fine-tuning, which may take long

    def export_cut(self, work: Path, X: Any, n_classes: int, config: ExportConfig, seed: int) -> ExportedBackbone:
        from export.text_fused import OUTPUT, export_text_cut

        fused, tokenizer = export_text_cut(self.source, list((X or TEXT_SAMPLE)[:4]), n_classes, config, work, seed)
        return ExportedBackbone(fused.frozen, OUTPUT, fused.parity, extra_files={layout.TOKENIZER: tokenizer}, fused=fused)


def transformer_tunable(model: Any, tokenizer: Any, max_length: int) -> FineTunable:
    """A BERT-style Hugging Face encoder with sentence-transformers' mean pooling and L2 normalization.

    Args:
        model: a ``transformers`` encoder with ``embeddings`` and ``encoder.layer``.
        tokenizer: its ``transformers`` tokenizer.
        max_length: tokens per text.
    """
    import torch

    from export.finetune import Blocks, FineTunable
    from export.pooling import mean_pooled

    def encode(texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"))

    def forward(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = model(**inputs).last_hidden_state
        return mean_pooled(tokens, inputs["attention_mask"].to(tokens.dtype))

    # The pooler (if any) is left out: mean pooling never reads it, so it gets no gradient.
    return FineTunable(model, Blocks(stem=[model.embeddings], blocks=list(model.encoder.layer), top=[]), encode, forward)


def save_text_model(tunable: FineTunable, model_dir: str | os.PathLike, target: Path) -> Path:
    """The model folder at ``model_dir`` with the fine-tuned weights in place of its own.

    The sentence-transformers files (pooling, normalization, tokenizer) are
    copied as they are, so optimum exports the folder as before.
    """
    shutil.copytree(model_dir, target)
    for old in [*target.glob("*.safetensors"), *target.glob("pytorch_model*.bin")]:
        old.unlink()
    tunable.module.save_pretrained(str(target))
    return target
