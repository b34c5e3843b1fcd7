"""One alternative in a process of its own: ``python -m benchmarks.speed.worker SPEC.json RESULT.json``.

The spec says which alternative, the data, the headline size and the sweeps.
Peak RSS is read from the OS (``VmHWM``) right after the headline runs, so
the larger sweep points that follow do not count in it.
"""

from __future__ import annotations

import importlib
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

from benchmarks.harness import peak_rss_mb


def take(pool: tuple[list, list[str]], n: int) -> tuple[list, list[str]]:
    """The first ``n`` examples of the pool, cycling through it again when ``n`` is larger.

    A text seen again gets its round appended ("... (1)"): edgeft computes a
    repeated example's features once, so a plain repeat would flatter it.
    """
    examples, labels = pool
    size = len(examples)
    return (
        [examples[i % size] if i < size else f"{examples[i % size]} ({i // size})" for i in range(n)],
        [labels[i % size] for i in range(n)],
    )


def timed(alternative, texts: list[str], labels: list[str], epochs: int, repetitions: int, side=None) -> dict:
    """Median, min and max personalization wall time over ``repetitions`` runs.

    ``side``, when given, is timed after every run on the same examples, so the
    two medians see the same load on a shared machine (their ratio is fair).
    """
    seconds, side_seconds = [], []
    for _ in range(repetitions):
        started = time.perf_counter()
        alternative.fit(texts, labels, epochs)
        seconds.append(time.perf_counter() - started)
        if side:
            started = time.perf_counter()
            side(texts)
            side_seconds.append(time.perf_counter() - started)
    result = {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds), "runs_s": seconds}
    if side:
        result["backbone_pass_median_s"] = statistics.median(side_seconds)
    return result


def estimate(measured: dict, target: dict, batch_size: int) -> dict:
    """The ``target`` run's seconds, from the measured seconds per training step (for rows too slow to run in full).

    A per-step row's time is its steps times one step's: every step runs the
    backbone on one batch, so steps = epochs x batches per epoch.
    """
    steps = measured["epochs"] * math.ceil(measured["examples"] / batch_size)
    per_step = measured["median_s"] / steps
    target_steps = target["epochs"] * math.ceil(target["examples"] / batch_size)
    return {**target, "steps": target_steps, "per_step_s": per_step, "median_s": per_step * target_steps}


def run(spec: dict) -> dict:
    """Start the alternative, warm it up, time the headline and the sweeps, score it on the test split."""
    from device_runtime import TruncationWarning

    warnings.simplefilter("ignore", TruncationWarning)  # BBC articles run past 128 tokens, in every alternative
    module = importlib.import_module(spec.get("module", "benchmarks.speed.alternatives"))
    cls = module.ALTERNATIVES[spec["alternative"]]
    alternative = cls(Path(spec["cache"]), spec["batch_size"], spec["lr"])
    alternative.load()
    startup_s = time.time() - spec["launched_at"]
    startup_rss_mb = peak_rss_mb()
    data = alternative.load_data()
    texts, labels = take(data["pool"], spec["examples"])
    alternative.fit(texts[: spec["batch_size"]], labels[: spec["batch_size"]], 1)  # warm-up: first-call costs
    # edgeft also times the limit (its own backbone pass) in turn with each run: the ratio to the limit.
    headline = timed(alternative, texts, labels, spec["epochs"], spec["repetitions"], getattr(alternative, "backbone_pass", None))
    result = {
        "alternative": spec["alternative"],
        "startup_s": startup_s,
        "startup_rss_mb": startup_rss_mb,
        "peak_rss_mb": peak_rss_mb(),
        "headline": {"examples": spec["examples"], "epochs": spec["epochs"], **headline},
        "accuracy": alternative.accuracy(*data["test"]) if spec.get("score", True) else None,
        "test_examples": len(data["test"][0]),
        "torch_loaded": sys.modules.get("torch") is not None,
    }
    if "estimate_for" in spec:
        result["headline"]["estimate"] = estimate(result["headline"], spec["estimate_for"], spec["batch_size"])
    result["n_sweep"] = [
        {
            "examples": n,
            "epochs": spec["epochs_for_n_sweep"],
            **timed(alternative, *take(data["pool"], n), spec["epochs_for_n_sweep"], 1),
        }
        for n in spec["n_sweep"]
    ]
    sweep_data = take(data["pool"], spec["examples_for_e_sweep"])
    result["e_sweep"] = [
        {"examples": spec["examples_for_e_sweep"], "epochs": e, **timed(alternative, *sweep_data, e, 1)} for e in spec["e_sweep"]
    ]
    return result


# These processes stand for a device, where torch is not installed.
DEVICE_ONLY = {"edgeft", "limit", "latency", "vision-edgeft", "vision-limit"}


def main() -> None:
    spec_path, result_path = sys.argv[1:3]
    spec = json.loads(Path(spec_path).read_text())
    if spec["alternative"] in DEVICE_ONLY:
        # With onnxruntime-training installed, `import onnxruntime` tries `onnxruntime.training.ortmodule`,
        # which imports torch when torch is installed (as in this venv). On a device it is not; make it so here.
        sys.modules["torch"] = None
    if spec["alternative"] == "latency":
        from benchmarks.speed.latency import run as run_latency
        from device_runtime import TruncationWarning

        warnings.simplefilter("ignore", TruncationWarning)

        result = run_latency(spec)
    else:
        result = run(spec)
    Path(result_path).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
