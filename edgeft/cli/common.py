"""What the commands share: the data, training, runtime and trust options, option types, progress bars and
the formatting of numbers and sizes.
"""

from __future__ import annotations

import argparse
from typing import Any, final

from edgeft.config import (
    FUSED_LR,
    TEXT_FUSED_LR,
    Accept,
    Engine,
    ExportConfig,
    Metric,
    RuntimeConfig,
    Schedule,
    TrainConfig,
)
from edgeft.errors import ConfigError
from edgeft.signing import trust_from_env

TRAIN_DEFAULTS = TrainConfig()
EXPORT_DEFAULTS = ExportConfig()
RUNTIME_DEFAULTS = RuntimeConfig()
DEVICE_TRAIN_KEYS = (
    "weight_decay",
    "validation_fraction",
    "patience",
    "metric",
    "balanced_sampling",
    "max_seconds",
    "accept",
    "replay_ratio",
    "l2sp",
    "max_label_loss",
    "forgetting_level",
)


def _add_data_args(p: argparse.ArgumentParser, *, labels: bool = True) -> None:
    p.add_argument("--text-column", default="text", help="column holding the text (default: %(default)s)")
    if labels:
        p.add_argument("--label-column", default="label", help="column holding the label (default: %(default)s)")


def _add_train_args(p: argparse.ArgumentParser, defaults: TrainConfig | None) -> None:
    """Training flags; unset flags keep ``defaults`` (export) or, with None, the bundle's own."""
    d = defaults or TRAIN_DEFAULTS
    shown = (lambda v: "the bundle's") if defaults is None else (lambda v: v)
    lr_note = (
        ""
        if defaults is None
        else (f"; {FUSED_LR} with --device-trainable-blocks, {TEXT_FUSED_LR} for a text encoder's whole layers")
    )
    p.add_argument("--epochs", type=int, help=f"passes over the data (default: {shown(d.epochs)})")
    p.add_argument("--lr", type=float, help=f"peak learning rate of AdamW (default: {shown(d.lr)}{lr_note})")
    p.add_argument("--batch-size", type=int, help=f"examples per step (default: {shown(d.batch_size)})")
    p.add_argument(
        "--schedule",
        choices=[s.value for s in Schedule],
        help=f"learning-rate schedule after warm-up (default: {shown(d.schedule.value)})",
    )
    p.add_argument("--warmup-steps", type=int, help=f"steps of linear warm-up (default: {shown(d.warmup_steps)})")
    p.add_argument("--seed", type=int, help=f"shuffling seed (default: {shown(d.seed)})")


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training flags given on the command line (unset ones are None and left out)."""
    keys = ("epochs", "lr", "batch_size", "schedule", "warmup_steps", "seed", *DEVICE_TRAIN_KEYS)
    return {k: v for k in keys if (v := getattr(args, k, None)) is not None}


def _add_device_train_args(p: argparse.ArgumentParser) -> None:
    """Controls of on-device training; unset flags keep the bundle's (or TrainConfig's) defaults."""
    d = TRAIN_DEFAULTS
    p.add_argument("--weight-decay", type=float, help="AdamW's decoupled weight decay (default: the bundle's)")
    p.add_argument(
        "--validation-fraction",
        type=float,
        help=f"share of each class held out for early stopping and the acceptance check (default: {d.validation_fraction})",
    )
    p.add_argument("--patience", type=int, help="stop after this many epochs without improvement of --metric (default: off)")
    p.add_argument(
        "--metric",
        choices=[m.value for m in Metric],
        help=f"what early stopping and acceptance compare (default: {d.metric.value})",
    )
    p.add_argument(
        "--balanced-sampling",
        action="store_true",
        default=None,
        help="draw examples with probability 1/class count, for skewed data (default: off)",
    )
    p.add_argument("--max-seconds", type=float, help="time budget of the whole run (default: none)")
    p.add_argument(
        "--accept",
        choices=[a.value for a in Accept],
        help=f"when the new head replaces the current one (default: {d.accept.value})",
    )
    p.add_argument(
        "--replay-ratio",
        type=float,
        help=f"replay of the bundle's server features: every label topped up to this times the user's mean examples per label; 0 is off (default: {d.replay_ratio})",
    )
    p.add_argument(
        "--l2sp",
        type=float,
        help="strength of the pull toward the shipped head's weights (L2-SP); 0 is off (default: the bundle's, off)",
    )
    p.add_argument(
        "--max-label-loss",
        type=float,
        help=f"recall (0..1) a label may lose on the guard or validation rows before the guard counts it lost (default: {d.max_label_loss})",
    )
    p.add_argument(
        "--forgetting-level",
        type=float,
        help=f"... and only where chance explains the loss with probability below this (McNemar's exact test; below 0.5 one row never counts; default: {d.forgetting_level})",
    )


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    d = RUNTIME_DEFAULTS
    p.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        default=d.engine.value,
        help="head training engine: ort, step (plain onnxruntime), numpy, or auto = ort where installed, else step (default: %(default)s)",
    )
    p.add_argument(
        "--providers",
        default=",".join(d.providers),
        help="backbone execution providers in order, e.g. cuda,cpu; missing ones fall back (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=d.intra_op_threads,
        help="intra-op threads of the backbone, 0 = ORT's choice (default: %(default)s)",
    )
    p.add_argument(
        "--inter-op-threads",
        type=int,
        default=d.inter_op_threads,
        help="inter-op threads, 0 = ORT's choice (default: %(default)s)",
    )
    p.add_argument(
        "--cache-dir", default=d.cache_dir, help="folder that keeps backbone features between runs (default: a temporary folder)"
    )
    p.add_argument(
        "--cache-memory-mb",
        type=float,
        default=d.cache_memory_mb,
        help="features kept in memory before spilling to disk (default: %(default)s)",
    )
    _add_trust_arg(p)


def _add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust", default=None, help="trust file: load signed bundles only, by its keys (default: $EDGEFT_TRUST, else none)"
    )


def _port(text: str) -> int:
    """A TCP port, 1-65535: anything else is a usage error naming the option (never a random port bound silently)."""
    port = int(text) if text.isdigit() else 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port; give a number from 1 to 65535")
    return port


def _runtime(args: argparse.Namespace) -> RuntimeConfig:
    return RuntimeConfig(
        engine=args.engine,
        providers=tuple(args.providers.split(",")),
        intra_op_threads=args.threads,
        inter_op_threads=args.inter_op_threads,
        cache_dir=args.cache_dir,
        cache_memory_mb=args.cache_memory_mb,
        trust=trust_from_env(args.trust),
    )


def _csv(values: tuple) -> str:
    return ",".join(f"{v:g}" for v in values)


def _numbers(text: str, kind: type, option: str) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated {kind.__name__} values, got {text!r}") from None


_LABELLED_FILES = (
    ".csv or .jsonl texts, .npz with X (texts, uint8 images or float tensors) and y, or a .csv of number columns and "
    "a label column (tabular rows)"
)


@final
class _ProgressBars:
    """A progress callback that draws one tqdm bar per stage on the terminal."""

    def __enter__(self) -> _ProgressBars:
        from tqdm import tqdm

        self._tqdm, self._bars = tqdm, {}
        return self

    def __call__(self, progress: Any) -> None:
        bar = self._bars.get(progress.stage)
        if bar is None:
            unit = "example" if progress.stage == "features" else "epoch"
            bar = self._bars[progress.stage] = self._tqdm(total=progress.total, desc=progress.stage, unit=unit, leave=False)
        if progress.loss is not None:
            bar.set_postfix(loss=f"{progress.loss:.4f}", refresh=False)
        bar.update(progress.done - bar.n)
        if progress.done >= progress.total:
            bar.close()
            del self._bars[progress.stage]

    def __exit__(self, *exc: object) -> None:
        for bar in self._bars.values():
            bar.close()


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"
