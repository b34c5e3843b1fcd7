"""Configuration types shared by the exporter and the device runtime.

Plain frozen dataclasses: the resolved values travel in the bundle's manifest
and in saved state, so a run can always be reproduced from what it wrote.
Each field is declared once with :func:`edgeft.fields.setting` (type, range,
default, help, and which commands and the service offer it); the command line's
flags and the service's request fields are made from these declarations, and
one validator (:func:`edgeft.fields.check`) checks every config on creation.
A new setting is one field here.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from typing import Any, TypeVar

from edgeft.errors import ConfigError
from edgeft.fields import DRIFT, EXPORT, PERSONALIZE, SERVICE, Validated, setting

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


_DEVICE = (PERSONALIZE, SERVICE)  # settings of on-device training offered by `edgeft personalize` and the service


class NewLabels(str, enum.Enum):
    """labels the bundle lacks: refuse them, or add them in spare output slots (kept if the new head ships)"""

    REFUSE = "refuse"  # the default: a typo in a label must not claim a slot
    ADD = "add"


@dataclasses.dataclass(frozen=True)
class TrainConfig(Validated):
    """Hyperparameters of head training, on the workstation and on the device (each declared once: edgeft.fields)."""

    # Features are cached, so an epoch over a few hundred examples costs milliseconds.
    epochs: int = setting(30, "passes over the data", ge=1, limit=1000, expose=(EXPORT, PERSONALIZE, SERVICE))
    # Unit-norm sentence features need a larger step than a full fine-tune would.
    lr: float = setting(1e-2, "peak learning rate of AdamW", gt=0, limit=1, expose=(EXPORT, PERSONALIZE, SERVICE))
    # Small enough for a phone's memory, large enough for stable AdamW moments.
    batch_size: int = setting(32, "examples per step", ge=1, limit=4096, expose=(EXPORT, PERSONALIZE, SERVICE))
    # Linear decay to zero: the usual choice for short fine-tunes.
    schedule: Schedule = setting(Schedule.LINEAR, "learning-rate schedule after warm-up", expose=(EXPORT, PERSONALIZE))
    # No warm-up by default: the head starts from trained weights or zeros.
    warmup_steps: int = setting(0, "steps of linear warm-up", ge=0, expose=(EXPORT, PERSONALIZE))
    # Fixed seed, so a personalization run can be repeated exactly.
    seed: int = setting(0, "shuffling seed", ge=0, limit=2**32 - 1, expose=(EXPORT, PERSONALIZE, SERVICE))
    weight_decay: float | None = setting(
        None, "AdamW's decoupled weight decay", ge=0, none="the value baked into the bundle's optimizer", expose=(PERSONALIZE,)
    )
    # Share of each class held out to validate on (early stopping, acceptance); 0 validates on the training data.
    validation_fraction: float = setting(
        0.2, "share of each class held out for early stopping and the acceptance check", ge=0, lt=1, expose=_DEVICE
    )
    patience: int | None = setting(
        None, "epochs without improvement of the metric before training stops", ge=1, none="off", expose=_DEVICE
    )
    # Compared by early stopping and by the acceptance guard.
    metric: Metric = setting(Metric.LOSS, "what early stopping and acceptance compare", expose=(PERSONALIZE,))
    # Off by default: uniform draws are what the loss is defined over.
    balanced_sampling: bool = setting(
        False, "draw each epoch's examples with probability 1/class count, for skewed data", expose=(PERSONALIZE,)
    )
    max_seconds: float | None = setting(
        None, "wall-clock budget of one fit, features included", gt=0, none="no limit", expose=_DEVICE
    )
    # The default guards the user against a head worse than the one they have.
    accept: Accept = setting(Accept.IF_BETTER, "when the new head replaces the current one", expose=_DEVICE)
    # Off by default: see docs/device.md for what it buys at few examples per class.
    augment_views: int = setting(0, "image bundles: augmented views (crops, shifts) of each training image, cached", ge=0)
    augment_hflip: bool = setting(False, "whether augmented views may be mirrored: only where that keeps the label")
    # 1: balanced. Bundles without replay ignore it.
    replay_ratio: float = setting(
        1.0,
        "replay of the bundle's server features: every label topped up to this times the user's mean examples per label, "
        "so labels without examples keep their place; 0 is off",
        ge=0,
        limit=100,
        expose=_DEVICE,
    )
    l2sp: float | None = setting(
        None,
        "strength of the pull toward the shipped head's weights (L2-SP: l2sp/2 * ||W - W_shipped||^2); 0 is off",
        ge=0,
        none="off",
        expose=_DEVICE,
    )
    # The guard (device_runtime.guard) judges a new head on the bundle's held-out guard rows and the user's validation rows.
    max_label_loss: float = setting(
        0.02, "recall (0..1) a label (or a source's rows) may lose before the guard counts it lost", ge=0, le=1, expose=_DEVICE
    )
    # Below 0.5, one row moving never refuses a head. Chosen on the guard benchmark (docs/guard).
    forgetting_level: float = setting(
        0.1,
        "... and only where chance explains the rows lost with probability below this (McNemar's test)",
        gt=0,
        le=1,
        expose=_DEVICE,
    )

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
class RuntimeConfig(Validated):
    """How the device runs a bundle: engine, execution providers, threads, feature cache."""

    # ORT where it is installed; numpy on Python 3.13+ or Linux aarch64, where no wheel exists.
    engine: Engine = setting(
        Engine.AUTO,
        "head training engine: ort, step (plain onnxruntime), numpy, or auto = ort where installed, else step",
        expose=(PERSONALIZE,),
    )
    # CPU is always the last resort.
    providers: tuple[str, ...] = setting(
        ("cpu",),
        "backbone execution providers in order of preference, short (cuda, xnnpack, coreml, nnapi, qnn) or ORT's names; "
        "unavailable ones are skipped with a warning",
        expose=(PERSONALIZE,),
    )
    intra_op_threads: int = setting(
        0, "threads inside one backbone operator, 0 = ORT's choice", ge=0, flag="--threads", expose=(PERSONALIZE,)
    )
    inter_op_threads: int = setting(0, "threads across independent operators, 0 = ORT's choice", ge=0, expose=(PERSONALIZE,))
    # 100k MiniLM features are 150 MB.
    cache_memory_mb: float = setting(64.0, "features kept in memory before spilling to disk", ge=0, expose=(PERSONALIZE,))
    cache_dir: str | os.PathLike | None = setting(
        None,
        "folder that keeps backbone features between runs",
        none="a temporary folder, removed at exit",
        expose=(PERSONALIZE,),
    )
    trust: str | os.PathLike | None = setting(
        None,
        "trust file: load signed bundles only, by its keys (edgeft.signing)",
        none="no policy: unsigned bundles load with a warning",
    )
    # Bounds disk and save time (device_runtime.versions).
    keep_versions: int = setting(10, "head versions kept besides the shipped, current and pinned ones", ge=1)

    def _rules(self) -> None:
        if self.cache_dir is not None and os.path.exists(self.cache_dir) and not os.path.isdir(self.cache_dir):
            raise ConfigError(f"cache_dir {self.cache_dir} is a file, not a folder; give a folder for the feature cache.")


@dataclasses.dataclass(frozen=True)
class DriftConfig(Validated):
    """How the device watches its recent inputs for drift (see ``device_runtime/monitor.py``)."""

    window: int = setting(200, "recent predictions tested against the bundle's reference sample", ge=1, expose=(DRIFT,))
    window_seconds: float | None = setting(
        None, "also drop predictions older than this many seconds from the window", gt=0, none="count alone bounds it"
    )
    level: float = setting(0.01, "the windowed test's false-alarm rate per check", gt=0, lt=1, expose=(DRIFT,))
    # 500 resolves p-values down to 0.002.
    permutations: int = setting(500, "random splits drawing the test's null distribution", ge=1)
    # Fewer give the test little power.
    min_window: int = setting(30, "predictions the window must hold before the test runs", ge=1)
    check_every: int = setting(
        50, "check (and alert) after this many new predictions; 0: only when drift_report() is called", ge=0
    )
    # So that a report can be repeated exactly.
    seed: int = setting(0, "seed of the test's random splits", ge=0)

    def _rules(self) -> None:
        if self.min_window > self.window:
            raise ConfigError(f"min_window ({self.min_window}) must not exceed window ({self.window})")


# Cumulative feature shift counted as drift where the windowed test cannot run (device_runtime.drift.compare).
DRIFT_THRESHOLD = 0.5


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


class HeadKind(str, enum.Enum):
    """The head that trains on the device."""

    LINEAR = "linear"  # logistic regression on the features: fast, hard to overfit
    MLP = "mlp"  # one hidden ReLU layer: more capacity when local data is plentiful


@dataclasses.dataclass(frozen=True)
class ExportConfig(Validated):
    """What the exporter builds, beyond the model and the data it is given."""

    # Bundle identity, as devices and registries see it.
    name: str = setting("model", "bundle name: plain, without '/'", expose=(EXPORT,))
    version: str = setting("1.0.0", "bundle version", expose=(EXPORT,))
    # Measured, not guessed: INT8 makes MiniLM 4x smaller with the same predictions, but costs
    # EfficientNet-Lite0 points of accuracy (docs/export.md); auto ships what the server data supports.
    quantization: Quantization = setting(
        Quantization.AUTO,
        "backbone precision; auto measures none, int8-dynamic and int8-static on the server data and ships the smallest "
        "within --max-quality-loss; int8-static calibrates on the server data; the head is never quantized",
        flag="--quantize",
        expose=(EXPORT,),
    )
    # MiniLM was trained on 128.
    max_length: int = setting(128, "tokens per text, longer text is truncated", ge=1, expose=(EXPORT,))
    head: HeadKind = setting(HeadKind.LINEAR, "head type", expose=(EXPORT,))
    hidden_size: int = setting(128, "hidden units of an mlp head (ignored for a linear head)", ge=1, expose=(EXPORT,))
    weight_decay: float = setting(
        0.01, "AdamW's decoupled weight decay, baked into the optimizer artifact", ge=0, expose=(EXPORT,)
    )
    # Where the weights came from and under what licence, for whoever ships the bundle.
    base_model: str = setting(
        "",
        "base model's name for the manifest, e.g. sentence-transformers/all-MiniLM-L6-v2",
        none="the folder's name",
        expose=(EXPORT,),
    )
    license: str = setting("unknown", "base model's licence", expose=(EXPORT,))
    validation_fraction: float = setting(
        0.2, "share of the server data held out to measure the head and INT8 against FP32", ge=0, lt=1, expose=(EXPORT,)
    )
    # 1 point by default. An explicit INT8 mode checks it on the validation split; auto checks a 95% upper bound
    # on it over every server example. The command line takes it in points (--max-quality-loss).
    max_quality_loss: float = setting(0.01, "accuracy (0..1) INT8 may lose against FP32", ge=0, le=1)
    accept_quality_loss: bool = setting(
        False, "ship the INT8 mode given to --quantize even when it loses more than --max-quality-loss", expose=(EXPORT,)
    )
    device_trainable_blocks: int = setting(
        0,
        "last backbone blocks the device trains with the head, in FP32 (fused training artifacts; efficientnet-lite0 and "
        "BERT-like text encoders; in Python also sequential CNNs); 0 trains the head alone",
        ge=0,
        expose=(EXPORT,),
    )
    device_lora_rank: int = setting(
        0,
        "with --device-trainable-blocks on a text encoder: rank of LoRA adapters on those blocks' attention projections, "
        "which train instead of the whole blocks; 0: the blocks train whole",
        ge=0,
        flag="--device-lora",
        expose=(EXPORT,),
    )
    # Server data must not leave, even as features: 0 ships none.
    replay_per_class: int = setting(
        32, "server examples per label whose features ship for replay on devices (head/replay.npz)", ge=0, expose=(EXPORT,)
    )
    # Never predicted until a device claims one.
    spare_labels: int = setting(4, "output slots reserved for labels devices add", ge=0, expose=(EXPORT,))

    def _rules(self) -> None:
        if self.device_lora_rank and not self.device_trainable_blocks:
            raise ConfigError(
                "device_lora_rank (--device-lora) puts LoRA adapters on the blocks the device trains; set "
                "device_trainable_blocks (--device-trainable-blocks) to 1 or more, or device_lora_rank to 0."
            )
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
class ImagePreprocessing(Validated):
    """How the device turns uint8 pixels into a vision backbone's input.

    ``x = (pixel - mean) / std`` per channel after resizing; the defaults are
    EfficientNet-Lite's ``(x - 127) / 128`` at 224 px.
    """

    size: tuple[int, int] = setting(
        (224, 224), "height,width the backbone expects; images are resized (bilinear) to it", ge=1, flag="--image-size",
        rule="two positive integers (height, width)", expose=(EXPORT,),
    )  # fmt: skip
    mean: tuple[float, float, float] = setting(
        (127.0, 127.0, 127.0), "per-channel offset on 0..255 pixels", flag="--pixel-mean", expose=(EXPORT,)
    )
    std: tuple[float, float, float] = setting(
        (128.0, 128.0, 128.0), "per-channel divisor after the offset", gt=0, flag="--pixel-std", expose=(EXPORT,)
    )
    channel_order: ChannelOrder = setting(ChannelOrder.RGB, "colour order the backbone was trained on", expose=(EXPORT,))
    layout: Layout = setting(Layout.NCHW, "axis order of the backbone's input", expose=(EXPORT,))

    def _rules(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))


_SHAPE = "(channels, steps) or (features,), positive integers"


class LengthPolicy(str, enum.Enum):
    """What the device does with a window whose number of steps differs from the bundle's."""

    EXACT = "exact"  # refuse it, naming the length expected
    CROP_OR_PAD = "crop_or_pad"  # keep its centre steps, or pad both ends with each channel's server mean


@dataclasses.dataclass(frozen=True)
class TensorPreprocessing(Validated):
    """How the device turns float windows (channels x steps) or rows (features) into a tensor backbone's input.

    Each channel (a row's each feature) is standardised with the server data's mean and standard deviation,
    measured at export; a window is first cropped or padded to the fixed number of steps.
    """

    shape: tuple[int, ...] | None = setting(
        None, "one example's shape: CHANNELS,STEPS for a window, FEATURES for a row", ge=1, none="the data's (or the ONNX input's)",
        rule=_SHAPE, flag="--tensor-shape", expose=(EXPORT,),
    )  # fmt: skip
    # Sensor streams cut into windows rarely have one length: crop or pad rather than refuse.
    length_policy: LengthPolicy = setting(
        LengthPolicy.CROP_OR_PAD,
        "a window of another length: exact refuses it, crop_or_pad keeps its centre or pads both ends with the "
        "channel's server mean",
        expose=(EXPORT,),
    )
    # Off: mean 0 and std 1, where the backbone standardises itself.
    standardise: bool = setting(True, "standardise each channel with the server data's statistics", expose=(EXPORT,))

    def _rules(self) -> None:
        if self.shape is not None and len(self.shape) > 2:
            raise ConfigError(f"TensorPreprocessing.shape must be {_SHAPE}, got {self.shape!r}")


@dataclasses.dataclass(frozen=True)
class FineTuneConfig(Validated):
    """Server-side fine-tuning of the backbone (in torch) before it is exported (flags: --ft-NAME)."""

    # Fine-tuning a pretrained backbone wants small steps; 1e-4 suits both MiniLM and EfficientNet.
    lr: float = setting(1e-4, "peak learning rate of AdamW", gt=0, expose=(EXPORT,))
    # Fits MiniLM at 128 tokens and EfficientNet at 224 px in a few GB of memory.
    batch_size: int = setting(16, "examples per step", ge=1, expose=(EXPORT,))
    # A few passes: pretrained features move little before they overfit small data.
    epochs: int = setting(3, "passes over the training split", ge=1, expose=(EXPORT,))
    dropout: float = setting(0.1, "dropout on the pooled features, before the classification head", ge=0, lt=1, expose=(EXPORT,))
    weight_decay: float = setting(0.01, "AdamW's decoupled weight decay on every trained parameter", ge=0, expose=(EXPORT,))
    warmup_fraction: float = setting(
        0.1, "share of all steps warming the learning rate up from near zero", ge=0, lt=1, expose=(EXPORT,)
    )
    schedule: Schedule = setting(Schedule.LINEAR, "learning-rate decay after the warm-up", expose=(EXPORT,))
    trainable_blocks: int | None = setting(
        None, "backbone blocks trained, counted from the top; 0 freezes the whole backbone", ge=0, none="all", expose=(EXPORT,)
    )
    unfreeze_every: int = setting(
        0, "gradual unfreezing: one more block every this many epochs, 0 is off", ge=0, expose=(EXPORT,)
    )
    layer_lr_decay: float = setting(
        1.0, "learning-rate factor of each block below the one above (1.0: one rate for all)", gt=0, le=1, expose=(EXPORT,)
    )
    validation_fraction: float = setting(0.2, "share held out for early stopping and the metrics", gt=0, lt=1, expose=(EXPORT,))
    patience: int | None = setting(
        None, "epochs without a lower validation loss before stopping", ge=1, none="off", expose=(EXPORT,)
    )
    seed: int = setting(0, "seed of torch, the split and the shuffling", ge=0, expose=(EXPORT,))
    # Checks the whole pipeline in seconds.
    dry_run: bool = setting(
        False, "fine-tune one epoch on two batches only, to check the pipeline", flag="--dry-run", expose=(EXPORT,)
    )
    augment: bool = setting(
        False, "images only: each batch seen as a fresh random view (crop, shift), as the device's augment_views"
    )
    augment_hflip: bool = setting(False, "whether those views may be mirrored: only where a mirrored image keeps its label")
