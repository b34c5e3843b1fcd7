"""What every torch vision adapter shares: export through TorchScript, image preprocessing, blocks to fine-tune.

A subclass says where its blocks are (:meth:`TorchVision.blocks`) and how it is cut for the device
(:meth:`TorchVision.device_cut`); exporting, checking parity and fine-tuning are the same for all.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeft.config import ExportConfig, ImagePreprocessing
from edgeft.manifest import InputSpec
from export.adapters.base import (
    Adapter,
    ExportedBackbone,
    check_block_count,
    check_no_lora,
    image_input_spec,
    is_torch_module,
    preprocessing_spec,
)
from export.vision import INPUT, OUTPUT

if TYPE_CHECKING:
    from export.finetune import Blocks, FineTunable
    from export.fused import DeviceCut


class TorchVision(Adapter):
    """A ``torch.nn.Module`` mapping (n, 3, h, w) float images to (n, features)."""

    @classmethod
    def matches(cls, source: Any) -> bool:
        return is_torch_module(source)

    @property
    def modality(self) -> str:
        return "image"

    @property
    def default_name(self) -> str:
        return self.packaged.name if self.packaged else type(self.source).__name__

    @property
    def origin(self) -> str:
        return "torch module"

    @property
    def preprocessing(self) -> ImagePreprocessing:
        """The options' preprocessing, else the packaged model's recipe, else :meth:`default_preprocessing`."""
        if self.options.preprocessing is not None:
            return self.options.preprocessing
        return self.packaged.preprocessing if self.packaged else self.default_preprocessing()

    def default_preprocessing(self) -> ImagePreprocessing:
        """How this architecture's pixels become its input, when neither the options nor a package say."""
        return ImagePreprocessing()

    def image_size(self) -> tuple[int, int]:
        return self.preprocessing.size

    def example_input(self) -> Any:
        """The options' example input, else zeros of one image at the preprocessing's size."""
        if self.options.example_input is not None:
            return self.options.example_input
        import torch

        return torch.zeros(1, 3, *self.preprocessing.size)

    def export_onnx(self, work: Path, X: Any, config: ExportConfig) -> ExportedBackbone:
        from export.vision import export_torch_backbone

        fp32 = work / "backbone.onnx"
        return ExportedBackbone(fp32, OUTPUT, export_torch_backbone(self.source, self.example_input(), fp32))

    def input_spec(self, fp32: Path, config: ExportConfig) -> InputSpec:
        return image_input_spec(fp32, self.preprocessing)

    def blocks(self, module: Any) -> Blocks | None:
        """``module``'s stem, blocks and top for server-side fine-tuning; None where they are unknown."""
        return None

    def tunable(self, config: ExportConfig) -> Callable[[], FineTunable]:
        if self.blocks(self.source) is None:
            raise self.no_blocks()
        from device_runtime.image import preprocess
        from export.finetune import image_tunable

        module, spec = self.source, preprocessing_spec(self.preprocessing, [INPUT])
        pristine = copy.deepcopy(module.state_dict())

        def make() -> FineTunable:
            module.load_state_dict(pristine)
            return image_tunable(module, self.blocks(module), lambda images: preprocess(images, spec))

        return make

    def block_count(self) -> int:
        """How many blocks the device cut chooses among."""
        raise self.no_cut()

    def device_cut(self, n: int) -> DeviceCut:
        """The source cut before its last ``n`` blocks, as torch modules."""
        raise self.no_cut()

    def check_cut(self, config: ExportConfig) -> None:
        check_no_lora(config, self.kind)
        check_block_count(config.device_trainable_blocks, self.block_count())

    def export_cut(self, work: Path, X: Any, n_classes: int, config: ExportConfig, seed: int) -> ExportedBackbone:
        from export.fused import export_fused

        self.check_cut(config)
        fused = export_fused(
            self.device_cut(config.device_trainable_blocks), self.example_input(), n_classes, config, work, seed=seed
        )
        return ExportedBackbone(fused.frozen, OUTPUT, fused.parity, fused=fused)
