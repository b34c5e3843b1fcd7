"""Runs each alternative in a child process of its own, so its memory and start-up are its own."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness
from benchmarks.speed.config import BenchConfig

# The order of the tables' rows: edgeft first, the limit last.
ALTERNATIVES = ("edgeft", "textbook-ort", "pytorch", "limit")
VISION_ALTERNATIVES = ("vision-edgeft", "vision-textbook-ort", "vision-pytorch", "vision-limit")
# ExecuTorch's rows (executorch_alternatives.py), run by its own environment's interpreter.
EXECUTORCH = ("executorch-textbook", "executorch-fp32-cached", "executorch-int8-cached")
VISION_EXECUTORCH = ("vision-executorch-textbook", "vision-executorch-fp32-cached")
# ExecuTorch's training programs that include the backbone run on its portable kernels (lowered with no
# delegate, as the training extension's recipe does): 45 to 100 s per step of 32 on 2 cores, so quick mode's headline (3 runs of 15 steps)
# would take over an hour per row. They time one step after a warm-up step, unscored, and the report
# gives the headline's time from it (worker.estimate).
ONE_STEP = ("executorch-textbook", "vision-executorch-textbook")


def vision_spec(config: BenchConfig) -> dict:
    """The vision run's sizes: every pooled image for ``vision_epochs``, no growth sweeps."""
    return {
        "examples": config.vision_per_class * 10,
        "epochs": config.vision_epochs,
        "n_sweep": [],
        "e_sweep": [],
        "examples_for_e_sweep": 0,
    }


def run_worker(alternative: str, cache: Path, config: BenchConfig, python: Path | None = None) -> dict:
    """``python -m benchmarks.speed.worker`` for one alternative; returns the JSON it writes.

    ``python`` is the interpreter (default: this one); ExecuTorch's rows get their environment's.

    Raises:
        RuntimeError: the worker failed; its stderr's tail is in the message.
    """
    with tempfile.TemporaryDirectory() as folder:
        spec_path, result_path = Path(folder) / "spec.json", Path(folder) / "result.json"
        spec = {**dataclasses.asdict(config), "alternative": alternative, "cache": str(cache)}
        if alternative in (*VISION_ALTERNATIVES, *VISION_EXECUTORCH):
            spec.update(vision_spec(config))
        if alternative in (*EXECUTORCH, *VISION_EXECUTORCH):
            # The headline only: a training program runs every step on portable kernels, and sweeps would take hours.
            spec.update(module="benchmarks.executorch.alternatives", n_sweep=[], e_sweep=[])
        if alternative in ONE_STEP:
            target = {"examples": spec["examples"], "epochs": spec["epochs"]}
            spec.update(examples=config.batch_size, epochs=1, repetitions=1, score=False, estimate_for=target)
        spec["launched_at"] = time.time()
        spec_path.write_text(json.dumps(spec))
        done = subprocess.run(
            [str(python or sys.executable), "-m", "benchmarks.speed.worker", str(spec_path), str(result_path)],
            capture_output=True,
            check=False,  # a failure is raised below, with the worker's stderr
            text=True,
            cwd=harness.ROOT,
        )
        if done.returncode != 0:
            raise RuntimeError(f"The {alternative} worker failed:\n{done.stderr[-3000:]}")
        return json.loads(result_path.read_text())


def run_all(cache: Path, config: BenchConfig, log=print, executorch: Path | None = None) -> dict[str, dict]:
    """Every alternative and the latency worker, one after another (never two at once: 2 cores).

    ``executorch`` is ExecuTorch's interpreter; without it, or for a program whose
    export failed (see executorch_export.py), its rows are left out.
    """
    wanted: tuple[str, ...] = ()
    if executorch is not None:
        from benchmarks.executorch.export import exported

        wanted = tuple(name for name in config.executorch if exported(cache, name))

    def modality(names: tuple[str, ...], executorch_names: tuple[str, ...]) -> list[tuple[str, Path | None]]:
        # ExecuTorch's cached rows run right after edgeft's: the figures closest to each other share the
        # machine's load (this 2-core VM is shared, and the load moves over minutes). The one-step rows run last.
        cached = [(n, executorch) for n in executorch_names if n in wanted and n not in ONE_STEP]
        one_step = [(n, executorch) for n in executorch_names if n in wanted and n in ONE_STEP]
        return [(names[0], None), *cached, *((n, None) for n in names[1:]), *one_step]

    runs = [*modality(ALTERNATIVES, EXECUTORCH), ("latency", None), *modality(VISION_ALTERNATIVES, VISION_EXECUTORCH)]
    results = {}
    for alternative, python in runs:
        started = time.perf_counter()
        results[alternative] = run_worker(alternative, cache, config, python)
        log(f"  {alternative}: {time.perf_counter() - started:.1f} s")
    return results
