"""Configuration types shared by the exporter and the device runtime.

Plain frozen dataclasses: the resolved values travel in the bundle's manifest
and in saved state, so a run can always be reproduced from what it wrote.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any, TypeVar

from edgeft.errors import ConfigError

T = TypeVar("T")


class Quantization(str, enum.Enum):
    """How the backbone's weights are stored in the bundle. The head is never quantized."""

    NONE = "none"
    INT8_DYNAMIC = "int8-dynamic"


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _enum(Schedule, self.schedule, "schedule"))
        object.__setattr__(self, "metric", _enum(Metric, self.metric, "metric"))
        object.__setattr__(self, "accept", _enum(Accept, self.accept, "accept"))
        _check_positive(self, "epochs", "batch_size")
        if not _finite(self.lr) or not self.lr > 0:
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if self.weight_decay is not None and (not _finite(self.weight_decay) or self.weight_decay < 0):
            raise ConfigError(f"weight_decay must be a finite number >= 0 or None, got {self.weight_decay!r}")
        if not _finite(self.validation_fraction) or not 0 <= self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if self.patience is not None:
            _check_positive(self, "patience")
        if self.max_seconds is not None and (not _finite(self.max_seconds) or self.max_seconds <= 0):
            raise ConfigError(f"max_seconds must be a finite number > 0 or None, got {self.max_seconds!r}")
        if not isinstance(self.balanced_sampling, bool):
            raise ConfigError(f"balanced_sampling must be True or False, got {self.balanced_sampling!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied; ``None`` values are ignored."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return from_dict(TrainConfig, {**to_dict(self), **changes})


class Engine(str, enum.Enum):
    """Which implementation trains the head on the device."""

    AUTO = "auto"  # ORT where its training API loads, else numpy (with a warning saying why)
    ORT = "ort"  # the bundle's ONNX Runtime training artifacts
    NUMPY = "numpy"  # the same loss, AdamW and schedule in numpy: needs no onnxruntime-training wheel


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", _enum(Engine, self.engine, "engine"))
        if isinstance(self.providers, str):
            object.__setattr__(self, "providers", (self.providers,))
        object.__setattr__(self, "providers", tuple(self.providers))
        if not self.providers or not all(isinstance(p, str) and p for p in self.providers):
            raise ConfigError(f"providers must be a non-empty list of provider names, got {self.providers!r}")
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if not _finite(self.cache_memory_mb) or self.cache_memory_mb < 0:
            raise ConfigError(f"cache_memory_mb must be a finite number >= 0, got {self.cache_memory_mb!r}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (enums as their values)."""
    return {
        f.name: (v.value if isinstance(v := getattr(config, f.name), enum.Enum) else v)
        for f in dataclasses.fields(config)
    }


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build ``cls`` from ``values``, refusing keys it does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"Unknown config key(s) for {cls.__name__}: {', '.join(unknown)}. "
            f"Known keys: {', '.join(sorted(known))}."
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
    # INT8 weights make the backbone 4x smaller and about 2x faster on CPUs.
    quantization: Quantization = Quantization.INT8_DYNAMIC
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantization", _enum(Quantization, self.quantization, "quantization"))
        object.__setattr__(self, "head", _enum(HeadKind, self.head, "head"))
        _check_positive(self, "max_length", "hidden_size")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"name must be a plain, non-empty name without '/', got {self.name!r}")
