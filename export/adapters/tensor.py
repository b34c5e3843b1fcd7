"""Float tensors (sensor windows, audio features, tabular rows): a torch module, an ONNX file, or edgeft's own net.

The input is declared, not guessed: one example's shape (``channels x steps`` for a window, ``features`` for a
row), what happens to windows of another length, and per-channel standardisation with the server data's mean
and standard deviation (``edgeft.config.TensorPreprocessing``, written into the manifest's ``input``).

Where the user has no pretrained backbone, ``"cnn1d"`` names a small default one: a 1-D convolutional network
for windows (a two-layer perceptron for rows) that the exporter trains on the server data (fine-tuning from
scratch, :data:`SCRATCH_FINE_TUNING` unless the user gives fine-tuning controls) before freezing it. A block
of an ``nn.Sequential`` source is one stage, so the fine-tuning controls (trainable blocks, gradual unfreezing,
layer LR decay) apply to it as to the other kinds.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from device_runtime.tensor import preprocess
from device_runtime.validation import check_tensors
from edgeft.config import ExportConfig, FineTuneConfig, Pooling, Schedule, TensorPreprocessing
from edgeft.errors import ConfigError, ExportError
from edgeft.manifest import InputSpec
from export.adapters.base import Adapter, BackboneOptions, ExportedBackbone, check_block_count, check_no_lora, is_torch_module
from export.onnx_file import graph_inputs, input_shape, prepare_onnx_backbone
from export.request import FineTuning

if TYPE_CHECKING:
    from export.finetune import Blocks, FineTunable

DEFAULT_NET = "cnn1d"  # what --model names edgeft's own small backbone by
INPUT, OUTPUT = "signal", "features"
# Training from random weights wants larger steps and more passes than fine-tuning a pretrained model. Not tuned:
# a usual recipe for small 1-D CNNs, checked on BasicMotions and JapaneseVowels (benchmarks/quality/sensors.py) and on
# BasicMotions' summary rows (tests/export/test_tensor_export.py).
SCRATCH_FINE_TUNING = FineTuneConfig(lr=3e-3, batch_size=16, epochs=40, dropout=0.1, schedule=Schedule.COSINE)


class Tensor(Adapter):
    """Float tensors through ``cnn1d``, a torch module, or an ``.onnx`` file (chosen by ``BackboneOptions.tensor``)."""

    name = "tensor"
    kind = "float-tensor backbones (cnn1d, or nn.Sequential stages)"
    fine_tunes = True
    cuts = True  # a torch source of nn.Sequential stages (cnn1d is one); an ONNX file has no blocks to cut

    def __init__(self, source: Any, options: BackboneOptions, packaged: Any = None) -> None:
        super().__init__(source, options, packaged)
        self.preprocessing = options.tensor or TensorPreprocessing()
        self.from_scratch = source == DEFAULT_NET  # check() replaces the name by the net it builds
        self._spec: InputSpec | None = None  # settled by check(), once the server data is seen

    @classmethod
    def matches(cls, source: Any) -> bool:
        return isinstance(source, str) and source == DEFAULT_NET

    @property
    def modality(self) -> str:
        return "tensor"

    @property
    def default_name(self) -> str:
        if self.is_onnx:
            return Path(self.source).stem
        return DEFAULT_NET if self.from_scratch else type(self.source).__name__

    @property
    def origin(self) -> str:
        if self.from_scratch:
            return "trained by the exporter on the server data"
        return str(self.source) if self.is_onnx else "torch module"

    @property
    def spec(self) -> InputSpec:
        """The input spec check() settled; before it, the declared shape's without standardisation."""
        if self._spec is None:
            shape = self._shape(None)
            self._spec = _spec(shape, self.preprocessing, np.zeros(shape[0]), np.ones(shape[0]))
        return self._spec

    @property
    def is_onnx(self) -> bool:
        return isinstance(self.source, (str, os.PathLike)) and str(self.source).endswith(".onnx")

    def check(self, X: Any, config: ExportConfig, fine_tuning: bool) -> None:
        """Also settle the input spec: the shape (declared, the server data's, or the ONNX input's) and statistics.

        Raises:
            ConfigError: fine-tuning an ONNX file, or no shape can be known.
            ExportError: the source is neither ``cnn1d``, a torch module nor an existing ``.onnx`` file; ``cnn1d``
                without server data; an ONNX file without its feature output.
        """
        if self.is_onnx and fine_tuning:
            raise ConfigError("Fine-tuning (--finetune, --tune) needs a torch module or cnn1d, not an ONNX file.")
        self._check_source(X)
        shape = self._shape(X)
        provisional = _spec(shape, self.preprocessing, np.zeros(shape[0]), np.ones(shape[0]))
        mean, std = np.zeros(shape[0]), np.ones(shape[0])
        if X is not None and self.preprocessing.standardise:
            mean, std = channel_statistics(check_tensors(X, provisional))
        self._spec = _spec(shape, self.preprocessing, mean, std)
        if self.source == DEFAULT_NET:
            self.source = default_net(shape)
        super().check(X, config, fine_tuning)  # after cnn1d is built: the device cut counts its stages

    def _check_source(self, X: Any) -> None:
        if self.is_onnx:
            if not Path(self.source).is_file():
                raise ExportError(f"ONNX file {self.source} does not exist.")
            if not self.options.feature_output:
                raise ConfigError(
                    "An ONNX backbone file needs feature_output (--feature-output): the output holding the features."
                )
        elif self.source == DEFAULT_NET:
            if X is None:
                raise ExportError(f"{DEFAULT_NET} is trained on the server data: give labelled examples (--train-data).")
        elif not is_torch_module(self.source):
            raise ExportError(
                f"A tensor backbone is {DEFAULT_NET!r}, a torch module or an .onnx file, got {type(self.source).__name__}."
            )

    def _shape(self, X: Any) -> tuple[int, ...]:
        """The declared shape, else the server data's (the longest window under crop_or_pad), else the ONNX input's."""
        if self.preprocessing.shape is not None:
            return self.preprocessing.shape
        if isinstance(X, np.ndarray) and X.ndim in (2, 3):
            return tuple(X.shape[1:])
        if isinstance(X, (list, tuple)) and X and all(np.ndim(x) == 2 for x in X):
            return (int(np.shape(X[0])[0]), max(int(np.shape(x)[1]) for x in X))
        if self.is_onnx:
            dims = input_shape(self.source, graph_inputs(self.source)[0])[1:]
            if dims and all(d is not None for d in dims):
                return tuple(int(d) for d in dims)
        raise ConfigError(
            "The tensor shape is unknown: declare it (TensorPreprocessing(shape=...), --tensor-shape CHANNELS,STEPS "
            "or FEATURES), or give server data of shape (n, channels, steps) or (n, features)."
        )

    def default_fine_tuning(self) -> FineTuning | None:
        return FineTuning(SCRATCH_FINE_TUNING) if self.from_scratch else None

    def check_examples(self, X: Any) -> np.ndarray:
        return check_tensors(X, self.spec)

    def export_onnx(self, work: Path, X: Any, config: ExportConfig) -> ExportedBackbone:
        fp32 = work / "backbone.onnx"
        if self.is_onnx:
            name, _ = prepare_onnx_backbone(self.source, fp32, self.options.feature_output, Pooling.NONE)
            return ExportedBackbone(fp32, name, None)
        from export.vision import export_torch_backbone

        return ExportedBackbone(fp32, OUTPUT, export_torch_backbone(self.source, self._example(X), fp32, input_name=INPUT))

    def check_cut(self, config: ExportConfig) -> None:
        check_no_lora(config, self.kind)
        if self.is_onnx or _split(self.source) is None:
            raise ExportError(
                "device_trainable_blocks (--device-trainable-blocks) cuts a tensor backbone between the stages of an "
                "nn.Sequential (cnn1d is one); this source has none. Export with device_trainable_blocks=0."
            )
        check_block_count(config.device_trainable_blocks, len(_split(self.source)[0]))

    def export_cut(self, work: Path, X: Any, n_classes: int, config: ExportConfig, seed: int) -> ExportedBackbone:
        from export.adapters.sequential import stage_cut
        from export.fused import export_fused

        self.check_cut(config)
        cut = stage_cut(*_split(self.source), config.device_trainable_blocks)
        fused = export_fused(cut, self._example(X), n_classes, config, work, seed=seed, input_name=INPUT)
        return ExportedBackbone(fused.frozen, OUTPUT, fused.parity, fused=fused)

    def _example(self, X: Any) -> Any:
        """Up to 8 server examples as the backbone takes them (standardised), else one window of zeros."""
        import torch

        rows = np.zeros((1, *self.spec.tensor_shape), np.float32) if X is None else check_tensors(X[:8], self.spec)
        return torch.from_numpy(preprocess(rows, self.spec))

    def input_spec(self, fp32: Path, config: ExportConfig) -> InputSpec:
        """The spec check() settled, named after the graph's input, which must take that shape.

        Raises:
            ExportError: the backbone has more than one input, or one of another rank or size.
        """
        names = graph_inputs(fp32)
        if len(names) != 1:
            raise ExportError(f"A tensor backbone must have one input, this one has {names}.")
        dims = input_shape(fp32, names[0])[1:]
        shape = self.spec.tensor_shape
        if len(dims) != len(shape) or any(d is not None and d != want for d, want in zip(dims, shape)):
            raise ExportError(
                f"The backbone's input {names[0]!r} has shape {input_shape(fp32, names[0])}, which does not take "
                f"examples of shape {tuple(shape)}; declare the shape it reads (--tensor-shape)."
            )
        return _spec(tuple(shape), self.preprocessing, self.spec.channel_mean, self.spec.channel_std, names)

    def tunable(self, config: ExportConfig) -> Callable[[], FineTunable]:
        if self.is_onnx or _split(self.source) is None:
            raise self.no_blocks()
        import torch

        from export.finetune import FineTunable

        module, spec = self.source, self.spec
        pristine = copy.deepcopy(module.state_dict())

        def make() -> FineTunable:
            module.load_state_dict(pristine)
            encode = lambda rows: torch.from_numpy(preprocess(check_tensors(rows, spec), spec))
            return FineTunable(module, _blocks(module), encode, module)

        return make


def channel_statistics(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (a row's per feature) mean and standard deviation of checked examples; a constant channel gets 1."""
    axes = (0, 2) if X.ndim == 3 else (0,)
    mean, std = X.mean(axis=axes, dtype=np.float64), X.std(axis=axes, dtype=np.float64)
    return mean, np.where(std > 1e-8, std, 1.0)


def _spec(shape: tuple[int, ...], p: TensorPreprocessing, mean: Any, std: Any, input_names: list[str] | None = None) -> InputSpec:
    policy = p.length_policy.value if len(shape) == 2 else "exact"
    return InputSpec(
        modality="tensor",
        input_names=input_names or [INPUT],
        tensor_shape=list(shape),
        channel_mean=[float(v) for v in mean],
        channel_std=[float(v) for v in std],
        length_policy=policy,
    )


def default_net(shape: tuple[int, ...], width: int = 64, seed: int = 0) -> Any:
    """edgeft's small backbone for ``shape``: three conv stages (32, 64, 64 filters; kernels 7, 5, 3) with batch norm
    and global average pooling for a window, two dense stages (ReLU) for a row; ``width`` features out."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if len(shape) == 1:
        # No batch norm on rows: a batch of one row (the trainer's first probe, a last short batch) has no statistics.
        dense = [nn.Sequential(nn.Linear(i, o), nn.ReLU()) for i, o in ((shape[0], width), (width, width))]
        return nn.Sequential(*dense, nn.Flatten())
    sizes = ((shape[0], 32, 7), (32, 64, 5), (64, width, 3))
    stages = [nn.Sequential(nn.Conv1d(i, o, k, padding=k // 2), nn.BatchNorm1d(o), nn.ReLU()) for i, o, k in sizes]
    return nn.Sequential(*stages, nn.AdaptiveAvgPool1d(1), nn.Flatten())


def _split(module: Any) -> tuple[list[Any], list[Any]] | None:
    """An ``nn.Sequential``'s stages and its top (the trailing pooling and flatten); None for other modules."""
    from torch import nn

    if not isinstance(module, nn.Sequential):
        return None
    children = list(module.children())
    end = len(children)
    while end and isinstance(children[end - 1], (nn.Flatten, nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)):
        end -= 1
    return (children[:end], children[end:]) if end else None


def _blocks(module: Any) -> Blocks:
    from export.finetune import Blocks

    stages, top = _split(module)
    return Blocks(stem=[], blocks=stages, top=top)
