"""Server-side fine-tuning of a backbone in torch, before it is exported.

The backbone is split into a stem, a list of blocks and a top (what follows
the last block). What trains is explicit: the top and the last N blocks
(``trainable_blocks``), one more block every K epochs (``unfreeze_every``),
each block's learning rate a factor below the one above it
(``layer_lr_decay``). Where each architecture's blocks are is its adapter's
knowledge (``export.adapters``: ``tunable`` and, for torch vision modules, ``blocks``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from device_runtime.acceptance import validation_split
from device_runtime.augment import augment_batch
from device_runtime.trainer import learning_rate_at
from device_runtime.validation import check_images
from edgeft.config import FineTuneConfig, TrainConfig, to_dict
from edgeft.errors import ConfigError
from edgeft.metrics import classification_report
from export.measure import take


@dataclasses.dataclass
class Blocks:
    """A backbone cut into stem, blocks (bottom to top) and top, for freezing and LR decay."""

    stem: list[nn.Module]
    blocks: list[nn.Module]
    top: list[nn.Module]


@dataclasses.dataclass
class FineTunable:
    """What the trainer needs of a backbone.

    Args:
        module: the torch backbone; ``forward(encode(rows))`` gives (n, features).
        blocks: its stem, blocks and top.
        encode: examples (texts or images) to the module's input.
        forward: the module's input to pooled features.
    """

    module: nn.Module
    blocks: Blocks
    encode: Callable[[Any], Any]
    forward: Callable[[Any], torch.Tensor]


@dataclasses.dataclass
class FineTuneReport:
    """Per-epoch metrics, and where the JSON log and the plot were written."""

    epochs: list[dict[str, Any]]
    stopped_early: bool
    best_epoch: int
    log: Path | None = None
    plot: Path | None = None


def unfrozen_depth(config: FineTuneConfig, epoch: int, n_blocks: int) -> int:
    """How many blocks, from the top, train in ``epoch`` (0-based)."""
    start = n_blocks if config.trainable_blocks is None else min(config.trainable_blocks, n_blocks)
    if config.unfreeze_every:
        start += epoch // config.unfreeze_every
    return min(start, n_blocks)


def block_learning_rates(config: FineTuneConfig, n_blocks: int) -> list[float]:
    """Peak learning rate of each block, bottom to top: the top block gets ``lr * decay``, the head ``lr``."""
    return [config.lr * config.layer_lr_decay ** (n_blocks - i) for i in range(n_blocks)]


def fine_tune(
    model: FineTunable,
    X: Any,
    labels: list[str],
    classes: list[str],
    config: FineTuneConfig,
    *,
    log_dir: str | Path | None = None,
    progress: bool = False,
) -> FineTuneReport:
    """Fine-tune ``model.module`` in place with a linear classification head on top.

    Args:
        model: the backbone and how to feed it.
        X, labels: server examples and their labels (each one of ``classes``).
        classes: the label set, in order.
        config: the controls (see :class:`~edgeft.config.FineTuneConfig`).
        log_dir: where to write ``finetune.json`` and ``finetune.png``.
        progress: draw a progress bar per epoch.

    Returns:
        The per-epoch report; the module holds the best epoch's weights
        (lowest validation loss) when early stopping is on, else the last.

    Raises:
        ConfigError: the data is too small to hold out a validation split, or augment is asked for text.
    """
    if config.augment and not isinstance(X, np.ndarray):
        raise ConfigError("augment applies to images; fine-tuning on text takes no augmentation (see docs/device.md).")
    torch.manual_seed(config.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    index = {c: i for i, c in enumerate(classes)}
    targets = np.array([index[v] for v in labels], np.int64)
    train, val = validation_split(labels, config.validation_fraction, config.seed)
    if config.dry_run:
        train, val = train[: 2 * config.batch_size], val[: config.batch_size]
    if len(val) == 0 or len(train) == 0:
        raise ConfigError("Fine-tuning needs at least 2 examples of some class to hold out a validation split.")
    epochs = 1 if config.dry_run else config.epochs
    module, parts = model.module.to(device), model.blocks
    with torch.no_grad():
        width = model.forward(_to(model.encode(take(X, train[:1])), device)).shape[1]
    head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(width, len(classes))).to(device)
    optimizer = torch.optim.AdamW(_param_groups(parts, head, config), weight_decay=config.weight_decay)
    peaks = [group["lr"] for group in optimizer.param_groups]
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = epochs * steps_per_epoch
    shape = TrainConfig(lr=1.0, schedule=config.schedule, warmup_steps=round(config.warmup_fraction * total))
    rng = np.random.default_rng(config.seed)
    history: list[dict[str, Any]] = []
    best, best_loss, stale, step = None, math.inf, 0, 0
    for epoch in range(epochs):
        depth = _set_trainable(module, parts, unfrozen_depth(config, epoch, len(parts.blocks)))
        losses, predicted, order = [], [], rng.permutation(train)
        bar = _bar(progress, steps_per_epoch, f"fine-tune {epoch + 1}/{epochs}")
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            factor = learning_rate_at(step, total, shape)
            for group, peak in zip(optimizer.param_groups, peaks):
                group["lr"] = peak * factor
            inputs = take(X, batch)
            if config.augment:
                inputs = augment_batch(check_images(inputs), rng, hflip=config.augment_hflip)
            logits = head(model.forward(_to(model.encode(inputs), device)))
            loss = nn.functional.cross_entropy(logits, torch.from_numpy(targets[batch]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item() * len(batch))
            predicted.append(logits.argmax(1).cpu().numpy())
            step += 1
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if bar:
            bar.close()
        row = {"epoch": epoch + 1, "lr": peaks[-1] * factor, "unfrozen_blocks": depth}
        row.update(_metrics("train", sum(losses) / len(order), targets[order], np.concatenate(predicted), len(classes)))
        row.update(_evaluate(model, head, X, targets, val, config.batch_size, len(classes), device))
        history.append(row)
        if row["val_loss"] < best_loss:
            best_loss, stale = row["val_loss"], 0
            if config.patience is not None:
                best = (epoch + 1, copy.deepcopy(module.state_dict()))
        else:
            stale += 1
        if config.patience is not None and stale >= config.patience:
            break
    stopped = len(history) < epochs
    best_epoch = len(history)
    if best is not None:
        best_epoch = best[0]
        module.load_state_dict(best[1])
    module.eval().cpu()
    report = FineTuneReport(history, stopped, best_epoch)
    if log_dir is not None:
        report.log, report.plot = _write_log(Path(log_dir), report, config)
    return report


def _param_groups(parts: Blocks, head: nn.Module, config: FineTuneConfig) -> list[dict[str, Any]]:
    n = len(parts.blocks)
    rates = block_learning_rates(config, n)
    groups = [{"params": _params(parts.stem), "lr": config.lr * config.layer_lr_decay ** (n + 1)}]
    groups += [{"params": list(block.parameters()), "lr": rate} for block, rate in zip(parts.blocks, rates)]
    groups += [{"params": _params(parts.top), "lr": config.lr}, {"params": list(head.parameters()), "lr": config.lr}]
    return [g for g in groups if g["params"]]


def _params(modules: list[nn.Module]) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def _set_trainable(module: nn.Module, parts: Blocks, depth: int) -> int:
    """Train the last ``depth`` blocks and, unless ``depth`` is 0, the top; freeze the rest.

    All blocks (``depth`` equal to their number) trains the stem too. Frozen
    modules also run in eval mode, so BatchNorm keeps its running statistics.
    """
    trainable = {id(m) for m in parts.blocks[len(parts.blocks) - depth :]}
    if depth > 0:
        trainable |= {id(m) for m in parts.top}
    if depth == len(parts.blocks):
        trainable |= {id(m) for m in parts.stem}
    module.train()
    for m in parts.stem + parts.blocks + parts.top:
        m.requires_grad_(id(m) in trainable)
        if id(m) not in trainable:
            m.eval()
    return depth


def _evaluate(
    model: FineTunable,
    head: nn.Module,
    X: Any,
    targets: np.ndarray,
    val: np.ndarray,
    batch_size: int,
    n_classes: int,
    device: str,
) -> dict[str, Any]:
    model.module.eval()
    head.eval()
    losses, predicted = [], []
    with torch.no_grad():
        for start in range(0, len(val), batch_size):
            batch = val[start : start + batch_size]
            logits = head(model.forward(_to(model.encode(take(X, batch)), device)))
            losses.append(float(nn.functional.cross_entropy(logits, torch.from_numpy(targets[batch]).to(device))) * len(batch))
            predicted.append(logits.argmax(1).cpu().numpy())
    head.train()
    return _metrics("val", sum(losses) / len(val), targets[val], np.concatenate(predicted), n_classes)


def _metrics(prefix: str, loss: float, truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, float]:
    r = classification_report(truth, predicted, n_classes)
    names = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
    return {f"{prefix}_loss": loss, **{f"{prefix}_{k}": r[k] for k in names}}


def _to(inputs: Any, device: str) -> Any:
    if isinstance(inputs, dict):
        return {k: v.to(device) for k, v in inputs.items()}
    return inputs.to(device)


def _bar(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


def _write_log(folder: Path, report: FineTuneReport, config: FineTuneConfig) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display on a build server
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "finetune.json"
    log.write_text(
        json.dumps(
            {
                "config": to_dict(config),
                "best_epoch": report.best_epoch,
                "stopped_early": report.stopped_early,
                "epochs": report.epochs,
            },
            indent=2,
        )
    )
    epochs = [r["epoch"] for r in report.epochs]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for split in ("train", "val"):
            ax.plot(epochs, [r[f"{split}_{key}"] for r in report.epochs], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    plot = folder / "finetune.png"
    fig.savefig(plot, dpi=100)
    plt.close(fig)
    return log, plot


def image_tunable(module: nn.Module, blocks: Blocks, preprocess: Callable[[np.ndarray], np.ndarray]) -> FineTunable:
    """A torch vision module whose ``forward`` gives pooled features, as a fine-tunable backbone.

    Args:
        module: the backbone.
        blocks: its stem, blocks and top, as its adapter (``export.adapters``) says.
        preprocess: uint8 (n, h, w, c) images to the float NCHW input (the device's own preprocessing).
    """
    return FineTunable(module, blocks, lambda images: torch.from_numpy(preprocess(check_images(images))), module)
