"""Configuration types shared by the exporter and the device runtime.

Plain frozen dataclasses: the resolved values travel in the bundle's manifest
and in saved state, so a run can always be reproduced from what it wrote.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from typing import Any, TypeVar

from edgeft.errors import ConfigError

T = TypeVar("T")


class Quantization(str, enum.Enum):
    """How the backbone's weights are stored in the bundle. The head is never quantized."""

    AUTO = "auto"  # measure none, int8-dynamic and int8-static; ship the smallest within max_quality_loss
    NONE = "none"
    INT8_DYNAMIC = "int8-dynamic"  # weights INT8, activations quantized on the fly: no data needed
    INT8_STATIC = "int8-static"  # weights and activations INT8 (QDQ), calibrated on server data


class Pooling(str, enum.Enum):
    """How an ONNX backbone's per-token (batch, tokens, hidden) output becomes one vector per example."""

    NONE = "none"  # the output already holds one vector per example
    MEAN = "mean"  # mean over the tokens the attention mask marks as real
    CLS = "cls"  # the first token's vector


class Schedule(str, enum.Enum):
    """Learning-rate schedule over all training steps, after the warm-up."""

    CONSTANT = "constant"
    LINEAR = "linear"
    COSINE = "cosine"


class Metric(str, enum.Enum):
    """What early stopping and the acceptance guard compare, on the validation split."""

    LOSS = "loss"  # mean cross-entropy: lower is better
    ACCURACY = "accuracy"  # higher is better
    MACRO_F1 = "macro_f1"  # higher is better; fairer on skewed classes


class Accept(str, enum.Enum):
    """When a newly trained head replaces the current one."""

    IF_BETTER = "if_better"  # only if not worse on the validation split: no regression shipped
    ALWAYS = "always"  # whatever the validation split says


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of head training, on the workstation and on the device."""

    # Features are cached, so an epoch over a few hundred examples costs milliseconds.
    epochs: int = 30
    # Unit-norm sentence features need a larger step than a full fine-tune would.
    lr: float = 1e-2
    # Small enough for a phone's memory, large enough for stable AdamW moments.
    batch_size: int = 32
    # Linear decay to zero: the usual choice for short fine-tunes.
    schedule: Schedule = Schedule.LINEAR
    # No warm-up by default: the head starts from trained weights or zeros.
    warmup_steps: int = 0
    # Fixed seed, so a personalization run can be repeated exactly.
    seed: int = 0
    # AdamW's decoupled weight decay; None keeps the value baked into the bundle's optimizer.
    weight_decay: float | None = None
    # Share of each class held out to validate on (early stopping, acceptance); 0 validates on the training data.
    validation_fraction: float = 0.2
    # Epochs without improvement of `metric` before training stops; None trains every epoch.
    patience: int | None = None
    # Compared by early stopping and by the acceptance guard.
    metric: Metric = Metric.LOSS
    # Draw each epoch's examples with probability 1/class count, so skewed local data trains every class.
    balanced_sampling: bool = False
    # Wall-clock budget of one fit, features included; None: no limit.
    max_seconds: float | None = None
    # The default guards the user against a head worse than the one they have.
    accept: Accept = Accept.IF_BETTER
    # Image bundles: augmented views of each training image (crops, shifts), each cached as its own
    # features. Off by default: see docs/device.md for what it buys at few examples per class.
    augment_views: int = 0
    # Whether augmented views may be mirrored: only where a mirrored image keeps its label (clothes, not digits).
    augment_hflip: bool = False
    # Replay of the bundle's server features: every label is topped up to this times the user's mean rows per
    # label, so labels the user gave no examples of keep their place (1: balanced); 0 turns replay off.
    # Bundles without replay ignore it.
    replay_ratio: float = 1.0
    # L2-SP: strength of the penalty l2sp/2 * ||W - W_shipped||^2 (weights, not biases) that holds the head near the shipped one.
    # None: DEFAULT_L2SP where the bundle's training graph has the term, else off; 0 turns it off.
    l2sp: float | None = None
    # The guard (device_runtime.guard) judges a new head on the bundle's held-out guard rows and the user's validation
    # rows. A label (or all rows of a source) is lost where its recall drops by more than this (0..1) ...
    max_label_loss: float = 0.02
    # ... and chance explains the rows lost with probability below this (McNemar's exact one-sided test on the rows the
    # heads disagree on). Below 0.5, one row moving never refuses a head. Chosen on the guard benchmark (docs/guard).
    forgetting_level: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _enum(Schedule, self.schedule, "schedule"))
        object.__setattr__(self, "metric", _enum(Metric, self.metric, "metric"))
        object.__setattr__(self, "accept", _enum(Accept, self.accept, "accept"))
        _check_positive(self, "epochs", "batch_size")
        if not _finite(self.lr) or not self.lr > 0:
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        _check_non_negative(self, "warmup_steps", "seed", "augment_views")
        if self.weight_decay is not None and (not _finite(self.weight_decay) or self.weight_decay < 0):
            raise ConfigError(f"weight_decay must be a finite number >= 0 or None, got {self.weight_decay!r}")
        if not _finite(self.validation_fraction) or not 0 <= self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if self.patience is not None:
            _check_positive(self, "patience")
        if self.max_seconds is not None and (not _finite(self.max_seconds) or self.max_seconds <= 0):
            raise ConfigError(f"max_seconds must be a finite number > 0 or None, got {self.max_seconds!r}")
        for name in ("balanced_sampling", "augment_hflip"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not _finite(self.replay_ratio) or self.replay_ratio < 0:
            raise ConfigError(f"replay_ratio must be a finite number >= 0 (0: no replay), got {self.replay_ratio!r}")
        if self.l2sp is not None and (not _finite(self.l2sp) or self.l2sp < 0):
            raise ConfigError(f"l2sp must be a finite number >= 0 (0: off) or None (the default), got {self.l2sp!r}")
        if not _finite(self.max_label_loss) or not 0 <= self.max_label_loss <= 1:
            raise ConfigError(f"max_label_loss must be in [0, 1] (a fraction of recall), got {self.max_label_loss!r}")
        if not _finite(self.forgetting_level) or not 0 < self.forgetting_level <= 1:
            raise ConfigError(f"forgetting_level must be in (0, 1] (a p-value), got {self.forgetting_level!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied; ``None`` values are ignored."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return from_dict(TrainConfig, {**to_dict(self), **changes})


# L2-SP's default strength, where the bundle's training graph carries the term (see TrainConfig.l2sp).
# Off: with replay on, the benchmark (docs/device.md) found it cost user-label gain for no all-label gain,
# and it adds its penalty to the reported training loss. Set l2sp > 0 where the bundle ships no replay.
DEFAULT_L2SP = 0.0


class Engine(str, enum.Enum):
    """Which implementation trains the head on the device."""

    AUTO = "auto"  # ORT where its training API loads, else the step graphs, else numpy (with a warning saying why)
    ORT = "ort"  # the bundle's ONNX Runtime training artifacts
    NUMPY = "numpy"  # the same loss, AdamW and schedule in numpy: needs no onnxruntime-training wheel
    STEP = "step"  # the bundle's step graphs (plain ONNX) on any onnxruntime: heads, text blocks and LoRA


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """How the device runs a bundle: engine, execution providers, threads, feature cache."""

    # ORT where it is installed; numpy on Python 3.13+ or Linux aarch64, where no wheel exists.
    engine: Engine = Engine.AUTO
    # Backbone providers in order of preference, short ("cuda", "xnnpack", "coreml", "nnapi", "qnn")
    # or full ORT names; unavailable ones are skipped with a warning. CPU is always the last resort.
    providers: tuple[str, ...] = ("cpu",)
    # Threads inside one backbone operator; 0 lets ORT choose (one per core).
    intra_op_threads: int = 0
    # Threads across independent operators; 0 lets ORT choose.
    inter_op_threads: int = 0
    # Features kept in memory; beyond this they spill to disk (100k MiniLM features are 150 MB).
    cache_memory_mb: float = 64.0
    # Where spilled (and persistent) features live; None: a temporary folder, removed at exit.
    cache_dir: str | None = None
    # Trust policy for bundles: a trust file's path (edgeft.signing); None: no policy, unsigned bundles load with a warning.
    trust: str | None = None
    # Head versions kept besides the shipped, current and pinned ones: bounds disk and save time (device_runtime.versions).
    keep_versions: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", _enum(Engine, self.engine, "engine"))
        if isinstance(self.providers, str):
            object.__setattr__(self, "providers", (self.providers,))
        if not isinstance(self.providers, (list, tuple)):
            raise ConfigError(f"providers must be a non-empty list of provider names, got {self.providers!r}")
        object.__setattr__(self, "providers", tuple(self.providers))
        if not self.providers or not all(isinstance(p, str) and p for p in self.providers):
            raise ConfigError(f"providers must be a non-empty list of provider names, got {self.providers!r}")
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if not _finite(self.cache_memory_mb) or self.cache_memory_mb < 0:
            raise ConfigError(f"cache_memory_mb must be a finite number >= 0, got {self.cache_memory_mb!r}")
        for name in ("cache_dir", "trust"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ConfigError(f"{name} must be a path or None, got {type(value).__name__}")
        if self.cache_dir is not None and os.path.exists(self.cache_dir) and not os.path.isdir(self.cache_dir):
            raise ConfigError(f"cache_dir {self.cache_dir} is a file, not a folder; give a folder for the feature cache.")
        if not isinstance(self.keep_versions, int) or isinstance(self.keep_versions, bool) or self.keep_versions < 1:
            raise ConfigError(f"keep_versions must be an integer >= 1, got {self.keep_versions!r}")


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """How the device watches its recent inputs for drift (see ``device_runtime/monitor.py``)."""

    # Predictions kept in the recent window; the test compares them with the bundle's reference sample.
    window: int = 200
    # Also drop predictions older than this many seconds from the window; None: count alone bounds it.
    window_seconds: float | None = None
    # The two-sample test's false-alarm rate per check: the chance it fires on data like the export data.
    level: float = 0.01
    # Random splits drawing the test's null distribution; 500 resolves p-values down to 0.002.
    permutations: int = 500
    # The test runs only once the window holds this many predictions: fewer give it little power.
    min_window: int = 30
    # Check (and alert) after this many new predictions; 0: only when drift_report() is called.
    check_every: int = 50
    # Fixes the test's random splits, so a report can be repeated exactly.
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive(self, "window", "permutations", "min_window")
        _check_non_negative(self, "check_every", "seed")
        if self.min_window > self.window:
            raise ConfigError(f"min_window ({self.min_window}) must not exceed window ({self.window})")
        if not _finite(self.level) or not 0 < self.level < 1:
            raise ConfigError(f"level must be in (0, 1), got {self.level!r}")
        if self.window_seconds is not None and (not _finite(self.window_seconds) or self.window_seconds <= 0):
            raise ConfigError(f"window_seconds must be a finite number > 0 or None, got {self.window_seconds!r}")


# Trainable conv blocks diverge at the head's 1e-2 (EfficientNet-Lite0, one block: loss 4.3 -> 9.3,
# chance accuracy); at 1e-3 they train (0.84 on Fashion-MNIST after 10 epochs).
FUSED_LR = 1e-3
# Whole transformer layers train best a step smaller again (examples/measure_text_cut.py, MiniLM on Rotten Tomatoes,
# 400 texts, 10 epochs: the last layer 0.716 / 0.752 / 0.758 accuracy at 1e-2 / 1e-3 / 1e-4, two layers 0.760 / 0.782
# at 1e-3 / 1e-4). LoRA adapters keep FUSED_LR: their B starts at zero (two layers, rank 8: 0.782 at 1e-3, 0.744 at 1e-2).
TEXT_FUSED_LR = 1e-4


def default_train_config(config: ExportConfig, modality: str = "image") -> TrainConfig:
    """The training defaults a bundle ships: TrainConfig's, with a smaller step where backbone blocks train too.

    Args:
        config: the export's configuration (trainable blocks, LoRA rank).
        modality: "text" or "image"; a text encoder's whole layers get :data:`TEXT_FUSED_LR`.
    """
    if not config.device_trainable_blocks:
        return TrainConfig()
    whole_text_layers = modality == "text" and not config.device_lora_rank
    return TrainConfig(lr=TEXT_FUSED_LR if whole_text_layers else FUSED_LR)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (enums as their values)."""
    return {f.name: (v.value if isinstance(v := getattr(config, f.name), enum.Enum) else v) for f in dataclasses.fields(config)}


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build ``cls`` from ``values``, refusing keys it does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"Unknown config key(s) for {cls.__name__}: {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}."
        )
    try:
        return cls(**values)
    except TypeError as e:
        raise ConfigError(f"Invalid {cls.__name__}: {e}") from e


def _enum(cls: type[enum.Enum], value: Any, name: str) -> enum.Enum:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in cls)
        raise ConfigError(f"{name} must be one of {choices}; got {value!r}") from None


def _check_positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_non_negative(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")


class HeadKind(str, enum.Enum):
    """The head that trains on the device."""

    LINEAR = "linear"  # logistic regression on the features: fast, hard to overfit
    MLP = "mlp"  # one hidden ReLU layer: more capacity when local data is plentiful


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What the exporter builds, beyond the model and the data it is given."""

    # Bundle identity, as devices and registries see it.
    name: str = "model"
    version: str = "1.0.0"
    # Measured, not guessed: INT8 makes MiniLM 4x smaller with the same predictions, but costs
    # EfficientNet-Lite0 points of accuracy (docs/export.md); auto ships what the server data supports.
    quantization: Quantization = Quantization.AUTO
    # Tokens per text; MiniLM was trained on 128, longer text is truncated.
    max_length: int = 128
    head: HeadKind = HeadKind.LINEAR
    # Hidden units of an MLP head (ignored for a linear head).
    hidden_size: int = 128
    # AdamW's decoupled weight decay, baked into the optimizer artifact.
    weight_decay: float = 0.01
    # Where the weights came from and under what licence, for whoever ships the bundle.
    base_model: str = ""  # e.g. "sentence-transformers/all-MiniLM-L6-v2"; default: the folder's name
    license: str = "unknown"
    # Share of the server data held out to measure the head and FP32-vs-INT8 agreement.
    validation_fraction: float = 0.2
    # Accuracy (0..1) INT8 may lose against FP32: 1 point by default. An explicit INT8 mode checks it on
    # the validation split; auto checks a 95% upper bound on it over every server example.
    max_quality_loss: float = 0.01
    # Ship an explicitly asked-for INT8 backbone even when it loses more than max_quality_loss.
    accept_quality_loss: bool = False
    # Last backbone blocks the device trains with the head (FP32, fused training artifacts); 0: the head only.
    device_trainable_blocks: int = 0
    # Rank of LoRA adapters on those blocks' attention projections (text encoders): then only the adapters and the
    # head train, the blocks' own weights stay; 0: the blocks train whole.
    device_lora_rank: int = 0
    # Server examples per label whose backbone features ship as the replay set (head/replay.npz), so on-device
    # training keeps labels the user has no examples of; 0 ships none (server data must not leave, even as features).
    replay_per_class: int = 32
    # Output slots reserved beyond the labels, so a device can add labels of its own; never predicted until claimed.
    spare_labels: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantization", _enum(Quantization, self.quantization, "quantization"))
        object.__setattr__(self, "head", _enum(HeadKind, self.head, "head"))
        _check_positive(self, "max_length", "hidden_size")
        if not isinstance(self.device_trainable_blocks, int) or self.device_trainable_blocks < 0:
            raise ConfigError(
                f"device_trainable_blocks must be an integer >= 0 (0 trains the head only), got {self.device_trainable_blocks!r}"
            )
        _check_non_negative(self, "replay_per_class", "spare_labels", "device_lora_rank")
        if self.device_lora_rank and not self.device_trainable_blocks:
            raise ConfigError(
                "device_lora_rank (--device-lora) puts LoRA adapters on the blocks the device trains; set "
                "device_trainable_blocks (--device-trainable-blocks) to 1 or more, or device_lora_rank to 0."
            )
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if not 0 <= self.max_quality_loss <= 1:
            raise ConfigError(f"max_quality_loss must be in [0, 1] (a fraction of accuracy), got {self.max_quality_loss!r}")
        if self.accept_quality_loss and self.quantization is Quantization.AUTO:
            raise ConfigError(
                "accept_quality_loss (--accept-quality-loss) overrides the guard of an INT8 mode you chose; "
                "quantization 'auto' chooses by max_quality_loss itself. Raise max_quality_loss (--max-quality-loss), "
                "or choose quantization 'int8-dynamic' or 'int8-static'."
            )
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"name must be a plain, non-empty name without '/', got {self.name!r}")


class ChannelOrder(str, enum.Enum):
    """The colour order a vision backbone was trained on."""

    RGB = "RGB"
    BGR = "BGR"


class Layout(str, enum.Enum):
    """The axis order of a vision backbone's input tensor."""

    NCHW = "NCHW"  # torch's order
    NHWC = "NHWC"  # TensorFlow / TFLite's order


@dataclasses.dataclass(frozen=True)
class ImagePreprocessing:
    """How the device turns uint8 pixels into a vision backbone's input.

    ``x = (pixel - mean) / std`` per channel after resizing; the defaults are
    EfficientNet-Lite's ``(x - 127) / 128`` at 224 px.
    """

    # Height and width the backbone was trained at; images are resized (bilinear) to it.
    size: tuple[int, int] = (224, 224)
    # Per-channel offset on the 0..255 scale.
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    # Per-channel divisor on the 0..255 scale.
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    channel_order: ChannelOrder = ChannelOrder.RGB
    layout: Layout = Layout.NCHW

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_order", _enum(ChannelOrder, self.channel_order, "channel_order"))
        object.__setattr__(self, "layout", _enum(Layout, self.layout, "layout"))
        size, mean, std = tuple(self.size), tuple(self.mean), tuple(self.std)
        if len(size) != 2 or any(not isinstance(v, int) or v < 1 for v in size):
            raise ConfigError(f"size must be two positive integers (height, width), got {self.size!r}")
        if len(mean) != 3 or len(std) != 3:
            raise ConfigError(f"mean and std need one value per channel (3), got {self.mean!r} and {self.std!r}")
        if any(not v > 0 for v in std):
            raise ConfigError(f"std values must be > 0, got {self.std!r}")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "mean", tuple(float(v) for v in mean))
        object.__setattr__(self, "std", tuple(float(v) for v in std))


class LengthPolicy(str, enum.Enum):
    """What the device does with a window whose number of steps differs from the bundle's."""

    EXACT = "exact"  # refuse it, naming the length expected
    CROP_OR_PAD = "crop_or_pad"  # keep its centre steps, or pad both ends with each channel's server mean


@dataclasses.dataclass(frozen=True)
class TensorPreprocessing:
    """How the device turns float windows (channels x steps) or rows (features) into a tensor backbone's input.

    Each channel (a row's each feature) is standardised with the server data's mean and standard deviation,
    measured at export; a window is first cropped or padded to the fixed number of steps.
    """

    # One example's shape, (channels, steps) or (features,); None: the server data's (or the ONNX input's).
    shape: tuple[int, ...] | None = None
    # Sensor streams cut into windows rarely have one length: crop or pad rather than refuse.
    length_policy: LengthPolicy = LengthPolicy.CROP_OR_PAD
    # Standardise with the server's statistics; off: mean 0 and std 1 (the backbone standardises itself).
    standardise: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "length_policy", _enum(LengthPolicy, self.length_policy, "length_policy"))
        if self.shape is not None:
            shape = tuple(self.shape)
            if not 1 <= len(shape) <= 2 or any(not isinstance(v, int) or v < 1 for v in shape):
                raise ConfigError(f"shape must be (channels, steps) or (features,), positive integers, got {self.shape!r}")
            object.__setattr__(self, "shape", shape)


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
    """Server-side fine-tuning of the backbone (in torch) before it is exported."""

    # Fine-tuning a pretrained backbone wants small steps; 1e-4 suits both MiniLM and EfficientNet.
    lr: float = 1e-4
    # Fits MiniLM at 128 tokens and EfficientNet at 224 px in a few GB of memory.
    batch_size: int = 16
    # A few passes: pretrained features move little before they overfit small data.
    epochs: int = 3
    # On the pooled features, before the classification head.
    dropout: float = 0.1
    # AdamW's decoupled weight decay on every trained parameter.
    weight_decay: float = 0.01
    # Share of all steps spent warming the learning rate up from near zero.
    warmup_fraction: float = 0.1
    # Decay after the warm-up: linear or cosine to zero, or constant.
    schedule: Schedule = Schedule.LINEAR
    # Backbone blocks to train, counted from the top; None trains all, 0 freezes the whole backbone.
    trainable_blocks: int | None = None
    # Gradual unfreezing: one more block every this many epochs (0: off).
    unfreeze_every: int = 0
    # Each block further from the head learns at this factor of the one above (1.0: one LR for all).
    layer_lr_decay: float = 1.0
    # Share of the data held out for early stopping and the validation metrics.
    validation_fraction: float = 0.2
    # Stop after this many epochs without a lower validation loss (None: run every epoch).
    patience: int | None = None
    # Seeds torch, the split and the shuffling, so a run can be repeated.
    seed: int = 0
    # One epoch on two batches: checks the whole pipeline in seconds.
    dry_run: bool = False
    # Images only: each batch seen as a fresh random view (crop, shift), as the device's augment_views does.
    augment: bool = False
    # Whether those views may be mirrored: only where a mirrored image keeps its label.
    augment_hflip: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _enum(Schedule, self.schedule, "schedule"))
        _check_positive(self, "batch_size", "epochs")
        _check_non_negative(self, "seed")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.trainable_blocks is not None and self.trainable_blocks < 0:
            raise ConfigError(f"trainable_blocks must be >= 0 or None (all), got {self.trainable_blocks!r}")
        if self.unfreeze_every < 0:
            raise ConfigError(f"unfreeze_every must be >= 0, got {self.unfreeze_every!r}")
        if not 0 < self.layer_lr_decay <= 1:
            raise ConfigError(f"layer_lr_decay must be in (0, 1], got {self.layer_lr_decay!r}")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 or None (off), got {self.patience!r}")
