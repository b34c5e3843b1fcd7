"""What every backbone adapter declares, and what it hands the bundle builder.

An adapter is bound to one source (a model folder, a torch module, an ONNX file) and says, for that kind
of backbone: whether it claims a source (:meth:`Adapter.matches`), how it exports to ONNX and checks the
export against the source (parity), its input spec and preprocessing, what a block is for server-side
fine-tuning (:meth:`Adapter.tunable`) and where the device cut goes (:meth:`Adapter.export_cut`).
"""

from __future__ import annotations

import abc
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from edgeft.config import ExportConfig, ImagePreprocessing, Pooling, TensorPreprocessing
from edgeft.errors import ExportError
from edgeft.manifest import InputSpec
from export.onnx_file import input_shape

if TYPE_CHECKING:  # both import torch, which exporting an ONNX file must not
    from export.finetune import FineTunable
    from export.fused import FusedParts
    from export.request import FineTuning
    from export.vision import VisionModel

# The texts the parity and bundle checks run when there is no server data.
TEXT_SAMPLE = ["edgeft checks the bundle before it ships."]


@dataclasses.dataclass(frozen=True)
class BackboneOptions:
    """How to read a source where the source alone does not say; every field is optional."""

    # An adapter's name (export.adapters.ADAPTERS) to use instead of the first that claims the source.
    adapter: str | None = None
    # A torch tensor of one real input's shape; default: zeros of (1, 3, *preprocessing.size).
    example_input: Any = None
    # Pixels to input; None: the adapter's own (a packaged model's training recipe, else ImagePreprocessing()).
    preprocessing: ImagePreprocessing | None = None
    # ONNX file: the graph output holding the features.
    feature_output: str | None = None
    # ONNX file: "none" when that output is (batch, features); "mean" or "cls" when it is (batch, tokens, hidden).
    pooling: Pooling | str = Pooling.NONE
    # ONNX file: a Hugging Face tokenizer.json, for a text backbone (without one it reads images).
    tokenizer: str | os.PathLike | None = None
    # Set: the backbone (a torch module, an ONNX file) reads float tensors, prepared as this says (adapter "tensor").
    tensor: TensorPreprocessing | None = None


@dataclasses.dataclass(frozen=True)
class ExportedBackbone:
    """An FP32 ONNX backbone (unless a given file was quantized already), as an adapter exported it."""

    fp32: Path
    output_name: str
    parity: float | None  # the largest ONNX-vs-source feature difference; None: there is no source to compare
    pooling: Pooling = Pooling.NONE
    extra_files: dict[str, Path] = dataclasses.field(default_factory=dict)  # bundle file name -> file to copy in
    quantized: list[str] = dataclasses.field(default_factory=list)  # what marks a given file as quantized already
    fused: FusedParts | None = None  # the trainable tail, when the backbone is cut (device_trainable_blocks)


class Adapter(abc.ABC):
    """One kind of backbone. Subclasses set ``name`` and ``kind`` and override what their kind supports."""

    name: ClassVar[str]  # what BackboneOptions.adapter names it by
    kind: ClassVar[str]  # the sources it claims, in words (for errors and docs)
    fine_tunes: ClassVar[bool] = False  # whether it knows its blocks for server-side fine-tuning (tunable)
    cuts: ClassVar[bool] = False  # whether it makes the device cut (check_cut and export_cut)

    def __init__(self, source: Any, options: BackboneOptions, packaged: VisionModel | None = None) -> None:
        self.source, self.options, self.packaged = source, options, packaged

    @classmethod
    @abc.abstractmethod
    def matches(cls, source: Any) -> bool:
        """Whether this adapter claims ``source``; the registry asks in order and takes the first."""

    @property
    @abc.abstractmethod
    def modality(self) -> str:
        """Which examples the bundle reads: "text", "image" or "tensor"."""

    @property
    @abc.abstractmethod
    def default_name(self) -> str:
        """The base model's name in the manifest when the export config gives none."""

    @property
    @abc.abstractmethod
    def origin(self) -> str:
        """Where the weights came from, for the manifest's ``base_model.source``."""

    def image_size(self) -> tuple[int, int] | None:
        """The size server images are read at (None for text)."""
        return None

    def check(self, X: Any, config: ExportConfig, fine_tuning: bool) -> None:
        """Refuse, before any slow work, what this backbone cannot do with ``X`` and ``config``.

        Raises:
            ExportError: the device cut or fine-tuning is asked of a backbone without blocks, or as subclasses say.
        """
        if fine_tuning and not self.fine_tunes:
            raise self.no_blocks()
        if config.device_trainable_blocks:
            self.check_cut(config)

    def check_examples(self, X: Any) -> Any:
        """The server examples checked as the device will check them (texts or uint8 images; tensors override).

        Raises:
            DataError: ``X`` is empty, misshaped or of the wrong modality.
        """
        from device_runtime.validation import check_images, check_texts

        return check_texts(X) if self.modality == "text" else check_images(X)

    def default_fine_tuning(self) -> FineTuning | None:
        """The fine-tuning an export runs when none is asked for: None, but a backbone trained from scratch needs one."""
        return None

    @abc.abstractmethod
    def export_onnx(self, work: Path, X: Any, config: ExportConfig) -> ExportedBackbone:
        """Export the whole backbone to ONNX under ``work``, and measure its parity with the source on ``X``."""

    @abc.abstractmethod
    def input_spec(self, fp32: Path, config: ExportConfig) -> InputSpec:
        """What the device feeds the exported backbone, as the manifest records it."""

    def tunable(self, config: ExportConfig) -> Callable[[], FineTunable]:
        """A factory of fresh fine-tunable copies of the source (one per Optuna trial): its blocks for fine-tuning.

        Raises:
            ExportError: this backbone's blocks are unknown.
        """
        raise self.no_blocks()

    def no_blocks(self) -> ExportError:
        """The error for fine-tuning a backbone whose blocks this adapter does not know."""
        return ExportError(
            f"Fine-tuning needs to know where the blocks of a {self.default_name} are; this edgeft knows "
            f"{known_blocks()}. Export without fine-tuning, or fine-tune it yourself first."
        )

    def adopt(self, tuned: FineTunable, work: Path) -> None:
        """Make the fine-tuned model the source to export (a module fine-tuned in place needs nothing)."""

    def check_cut(self, config: ExportConfig) -> None:
        """Refuse a device cut that cannot be made as ``config`` asks (``--device-trainable-blocks N``, ``--device-lora``).

        Raises:
            ExportError: this backbone has no device cut, N is not below its number of blocks, or it takes no LoRA.
        """
        raise self.no_cut()

    def export_cut(self, work: Path, X: Any, n_classes: int, config: ExportConfig, seed: int) -> ExportedBackbone:
        """The backbone cut before its last N blocks (``config.device_trainable_blocks``), exported under ``work``:
        the frozen part as the backbone, the trainable tail joined to the head as ``fused``; parity measured on ``X``.

        Raises:
            ExportError: this backbone has no device cut, or a part does not compute what the source does.
        """
        raise self.no_cut()

    def no_cut(self) -> ExportError:
        """The error for a device cut this adapter does not make."""
        return ExportError(
            f"device_trainable_blocks (--device-trainable-blocks) is not supported for {self.kind} yet, only for "
            f"{known_cuts()}; export with device_trainable_blocks=0 (the head alone trains on the device)."
        )


def is_torch_module(source: Any) -> bool:
    """Whether ``source`` is a ``torch.nn.Module``, without importing torch (a module implies torch is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(source, torch.nn.Module)


def check_no_lora(config: ExportConfig, kind: str) -> None:
    """LoRA goes on attention: a backbone of ``kind`` without it trains its last blocks whole."""
    if config.device_lora_rank:
        raise ExportError(
            f"device_lora_rank (--device-lora) puts LoRA adapters on a text encoder's attention; {kind} has "
            "none. Export with device_lora_rank=0: its last blocks then train whole."
        )


def check_block_count(n: int, blocks: int) -> None:
    """N trainable blocks must leave at least one block in the frozen part."""
    if not 0 < n < blocks:
        raise ExportError(f"device_trainable_blocks must be between 1 and {blocks - 1} for this backbone, got {n}.")


def image_input_spec(model: Path, p: ImagePreprocessing) -> InputSpec:
    """The image input of the backbone at ``model``, checked against the preprocessing's size and layout.

    Raises:
        ExportError: the backbone has more than one input, or one that does not take images of ``p.size``.
    """
    from export.onnx_file import graph_inputs

    input_names = graph_inputs(model)
    if len(input_names) != 1:
        raise ExportError(f"An image backbone must have one input, this one has {input_names}.")
    shape = input_shape(model, input_names[0])
    spatial = shape[2:4] if p.layout.value == "NCHW" else shape[1:3]
    if len(shape) != 4 or any(d is not None and d != want for d, want in zip(spatial, p.size)):
        raise ExportError(
            f"The backbone's input {input_names[0]!r} has shape {shape} ({p.layout.value}), which does not take "
            f"{p.size[0]}x{p.size[1]} images; set the image size (--image-size) and layout (--layout) the backbone expects."
        )
    return preprocessing_spec(p, input_names)


def preprocessing_spec(p: ImagePreprocessing, input_names: list[str]) -> InputSpec:
    """``p`` as the manifest's image input spec."""
    return InputSpec(
        modality="image",
        input_names=input_names,
        image_size=list(p.size),
        pixel_mean=list(p.mean),
        pixel_std=list(p.std),
        channel_order=p.channel_order.value,
        layout=p.layout.value,
    )


def known_blocks() -> str:
    """The adapters that know their blocks, in words."""
    from export.adapters import ADAPTERS

    return ", ".join(a.kind for a in ADAPTERS if a.fine_tunes)


def known_cuts() -> str:
    """The adapters that make a device cut, in words."""
    from export.adapters import ADAPTERS

    return ", ".join(a.kind for a in ADAPTERS if a.cuts)
