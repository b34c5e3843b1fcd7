"""An existing ONNX backbone file: its feature output picked and pooled with onnx alone (no torch).

It knows no architecture, so it has no blocks to fine-tune and no device cut; a file quantized already
ships as given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeft import layout
from edgeft.config import ExportConfig, ImagePreprocessing, Pooling, Quantization
from edgeft.errors import ConfigError, ExportError
from edgeft.manifest import InputSpec
from export.adapters.base import Adapter, BackboneOptions, ExportedBackbone, image_input_spec
from export.onnx_file import graph_inputs, prepare_onnx_backbone, quantization_evidence


class OnnxFile(Adapter):
    """A path ending in ``.onnx``; its feature output named by ``BackboneOptions.feature_output``."""

    name = "onnx-file"
    kind = "ONNX backbone files"

    def __init__(self, source: Any, options: BackboneOptions, packaged: Any = None) -> None:
        super().__init__(source, options, packaged)
        pooling = options.pooling
        if pooling not in {p.value for p in Pooling}:
            raise ExportError(f"pooling must be one of {', '.join(p.value for p in Pooling)}; got {pooling!r}")
        self.pooling = Pooling(pooling)

    @classmethod
    def matches(cls, source: Any) -> bool:
        return isinstance(source, (str, os.PathLike)) and str(source).endswith(".onnx")

    @property
    def modality(self) -> str:
        return "image" if self.options.tokenizer is None else "text"

    @property
    def default_name(self) -> str:
        return Path(self.source).stem

    @property
    def origin(self) -> str:
        # The name alone: a workstation's folders mean nothing on a device, and can say more than they should.
        return Path(self.source).name

    @property
    def preprocessing(self) -> ImagePreprocessing:
        """The options' preprocessing of an image backbone (ImagePreprocessing() when they give none)."""
        return self.options.preprocessing or ImagePreprocessing()

    def image_size(self) -> tuple[int, int]:
        return self.preprocessing.size

    def check(self, X: Any, config: ExportConfig, fine_tuning: bool) -> None:
        """Also refuse fine-tuning, a missing feature output, text without a tokenizer and missing files.

        Raises:
            ConfigError: fine-tuning is asked for, or no feature output is named.
            ExportError: the server data is text but no tokenizer is given, or a file does not exist.
        """
        if fine_tuning:
            raise ConfigError(
                "Fine-tuning (--finetune, --tune) needs a torch model (a text folder or a vision module), not an ONNX file."
            )
        super().check(X, config, fine_tuning)
        if not self.options.feature_output:
            raise ConfigError(
                "An ONNX backbone file needs feature_output (--feature-output): the name of the "
                "graph output holding the features."
            )
        tokenizer = self.options.tokenizer
        if tokenizer is None and isinstance(X, list) and X and isinstance(X[0], str):
            raise ExportError(
                "The server data holds text, but no tokenizer was given: a text backbone needs its "
                "tokenizer.json (--tokenizer). Without one the ONNX file is taken for an image backbone."
            )
        if tokenizer is not None and not Path(tokenizer).is_file():
            raise ExportError(f"Tokenizer file {tokenizer} does not exist; pass a Hugging Face tokenizer.json.")
        if not Path(self.source).is_file():
            raise ExportError(f"ONNX file {self.source} does not exist.")

    def export_onnx(self, work: Path, X: Any, config: ExportConfig) -> ExportedBackbone:
        """Prepare the file (one pooled feature output) under ``work``; there is no source to compare it with.

        Raises:
            ExportError: as :func:`export.onnx_file.prepare_onnx_backbone` says, or the file is quantized
                already and ``config`` asks to quantize it again.
        """
        fp32 = work / "backbone.onnx"
        output_name, _ = prepare_onnx_backbone(self.source, fp32, self.options.feature_output, self.pooling)
        quantized = quantization_evidence(fp32)
        if quantized and config.quantization not in (Quantization.AUTO, Quantization.NONE):
            raise ExportError(
                f"{self.source} is quantized already ({', '.join(quantized)}); quantizing it again as "
                f"{config.quantization.value} would stack a second rounding on the first. Export it with "
                "--quantize auto or none, which ship it as given, or give its FP32 original."
            )
        tokenizer = self.options.tokenizer
        extra = {layout.TOKENIZER: Path(tokenizer)} if tokenizer is not None else {}
        return ExportedBackbone(fp32, output_name, None, self.pooling, extra, quantized)

    def input_spec(self, fp32: Path, config: ExportConfig) -> InputSpec:
        if self.modality == "text":
            return InputSpec(
                modality="text", input_names=graph_inputs(fp32), tokenizer=layout.TOKENIZER, max_length=config.max_length
            )
        return image_input_spec(fp32, self.preprocessing)
