"""Fine-tuning a backbone from its adapter's factory of fine-tunable copies, and the Optuna search over its controls."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from edgeft.config import FineTuneConfig, to_dict
from export.finetune import FineTunable, FineTuneReport, fine_tune


def run_fine_tuning(
    make: Callable[[], FineTunable],
    X: Any,
    labels: list[str],
    classes: list[str],
    config: FineTuneConfig,
    *,
    trials: int = 0,
    log_dir: str | os.PathLike | None = None,
) -> tuple[FineTunable, FineTuneReport, dict[str, Any]]:
    """Fine-tune (after an Optuna search of ``trials`` trials, when asked); returns the model, its report and metrics."""
    search: dict[str, Any] = {}
    if trials:
        config, search = tune(make, X, labels, classes, config, trials)
    tunable = make()
    report = fine_tune(tunable, X, labels, classes, config, log_dir=log_dir, progress=True)
    best = report.epochs[report.best_epoch - 1]
    metrics = {
        "finetune_epochs_run": len(report.epochs),
        "finetune_best_epoch": report.best_epoch,
        "finetune_val_loss": best["val_loss"],
        "finetune_val_accuracy": best["val_accuracy"],
        "finetune_val_macro_f1": best["val_macro_f1"],
        "finetune_config": to_dict(config),
        **search,
    }
    return tunable, report, metrics


def tune(
    make: Callable[[], FineTunable], X: Any, labels: list[str], classes: list[str], base: FineTuneConfig, trials: int
) -> tuple[FineTuneConfig, dict[str, Any]]:
    """Optuna (TPE) over lr, weight decay, dropout and unfrozen depth, minimizing validation loss.

    Returns:
        ``base`` with the best trial's values, and a summary for the manifest.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_blocks = len(make().blocks.blocks)

    def objective(trial: optuna.Trial) -> float:
        config = dataclasses.replace(
            base,
            lr=trial.suggest_float("lr", 1e-5, 1e-3, log=True),
            weight_decay=trial.suggest_float("weight_decay", 1e-4, 1e-1, log=True),
            dropout=trial.suggest_float("dropout", 0.0, 0.5),
            trainable_blocks=trial.suggest_int("trainable_blocks", 0, n_blocks),
        )
        report = fine_tune(make(), X, labels, classes, config)
        return report.epochs[report.best_epoch - 1]["val_loss"]

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=base.seed))
    study.optimize(objective, n_trials=trials)
    return dataclasses.replace(base, **study.best_params), {
        "tune_trials": trials,
        "tune_best_val_loss": study.best_value,
        "tune_best_params": study.best_params,
    }
