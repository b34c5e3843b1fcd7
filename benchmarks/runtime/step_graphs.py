"""Step graphs on plain onnxruntime against ORT's training artifacts: step time, peak memory, parity.

``python -m benchmarks.runtime.step_graphs --mode quick --out docs/step-graphs`` exports five bundles (the MiniLM head
alone, MiniLM's last 2 layers, LoRA on them, EfficientNet-Lite0's last 2 blocks, cnn1d's last conv stage on
BasicMotions), embeds a few examples,
then trains each bundle with each engine in its own process (so peak RSS is that engine's), the same
batches in the same order, and writes ``results.json``, ``results.md`` and ``step_graphs.png``.
Ratios come from one run on one machine: the two engines of a bundle run back to back.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import harness

ENGINES = ("ort", "step")
STUDY = harness.Study("step-graphs", out="docs/step-graphs", work=None)


@dataclasses.dataclass(frozen=True)
class Mode:
    max_length: int  # tokens of the text cuts (MiniLM's own is 128)
    steps: int  # timed steps per engine, after WARMUP
    batch: int  # examples per step


MODES = {"smoke": Mode(16, 3, 4), "quick": Mode(32, 10, 8), "full": Mode(128, 30, 16)}
WARMUP = 2
CASES = {  # name: export config overrides; text ones cut MiniLM, "effnet" EfficientNet-Lite0, "cnn1d" edgeft's 1-D CNN
    "head": {},
    "minilm-2-blocks": {"device_trainable_blocks": 2},
    "minilm-2-blocks-lora": {"device_trainable_blocks": 2, "device_lora_rank": 4},
    "effnet-2-blocks": {"device_trainable_blocks": 2},
    "cnn1d-last-block": {"device_trainable_blocks": 1},
}
CNN1D_EPOCHS = 15  # cnn1d is trained at export; a third of its default epochs (the step's cost does not depend on them)


@dataclasses.dataclass(frozen=True)
class EngineRun:
    """One engine's run on one bundle, as its worker process reports it."""

    engine: str
    step_ms: float  # median over the timed steps
    peak_rss_mb: float  # the worker's peak resident memory (imports, bundle sessions, the steps)
    losses: list[float]


def export_case(name: str, folder: Path, mode: Mode) -> tuple[Path, np.ndarray, np.ndarray]:
    """The case's bundle, and head inputs and class indices of the examples it trains on."""
    from device_runtime import Personalizer
    from edgeft.config import ExportConfig
    from example_data import basic_motions, bbc_news, fashion_mnist, minilm_path, split_per_class
    from export import ServerData, export_bundle

    overrides = CASES[name]
    n = mode.batch * 2
    tuning = None
    if name.startswith("cnn1d"):
        from export import FineTuning
        from export.adapters.tensor import SCRATCH_FINE_TUNING

        motions = basic_motions()
        source, data, config = "cnn1d", ServerData(*motions["train"]), {}
        tuning = FineTuning(dataclasses.replace(SCRATCH_FINE_TUNING, epochs=CNN1D_EPOCHS))
        examples, targets = motions["test"]
    elif name.startswith("effnet"):
        from export.vision import VISION_MODELS

        images, labels = fashion_mnist("train", per_class=3)
        source, data, config = VISION_MODELS["efficientnet-lite0"].build(), ServerData(images, labels), {}
        examples, targets = fashion_mnist("test", per_class=max(1, n // 10 + 1))
    else:
        texts, labels = bbc_news()
        server, user = split_per_class(texts, labels, [4, max(2, n // 5 + 1)], seed=0)
        source, data, config = minilm_path(), ServerData(*server), {"max_length": mode.max_length}
        examples, targets = user
    export_config = ExportConfig(name=name, quantization="none", accept_quality_loss=True, **config, **overrides)
    path = folder / name
    export_bundle(source, path, data=data, config=export_config, fine_tuning=tuning)
    personalizer = Personalizer.from_bundle(path)
    features = personalizer.transform(examples)[:n]
    return path, features, np.array([personalizer.labels.index(label) for label in targets])[:n]


def worker(bundle: str, engine: str, inputs: str, steps: int, batch: int, out: str) -> None:
    """Train ``bundle``'s head with ``engine`` on the saved inputs; write an :class:`EngineRun` and the parameters."""
    from device_runtime.engines import open_engine
    from edgeft.bundle import Bundle
    from edgeft.config import Engine

    data = np.load(inputs)
    features, targets = data["features"], data["targets"]
    head = open_engine(Engine(engine), Bundle.load(bundle), threads=(2, 1))
    losses, times = [], []
    for i in range(WARMUP + steps):
        rows = np.arange(i * batch, (i + 1) * batch) % len(targets)
        start = time.perf_counter()
        losses.append(head.train_step(features[rows], targets[rows], 1e-3))
        times.append(time.perf_counter() - start)
    peak = harness.peak_rss_mb()
    run = EngineRun(engine, float(np.median(times[WARMUP:]) * 1000), peak, losses)
    Path(out).write_text(json.dumps(dataclasses.asdict(run)))
    np.savez(Path(out).with_suffix(".npz"), **head.parameters())


def run_engine(bundle: Path, engine: str, inputs: Path, mode: Mode, work: Path) -> tuple[EngineRun, dict[str, np.ndarray]]:
    out = work / f"{bundle.name}-{engine}.json"
    command = [sys.executable, "-m", "benchmarks.runtime.step_graphs", "--worker", str(bundle), engine, str(inputs)]
    subprocess.run([*command, str(mode.steps), str(mode.batch), str(out)], check=True, cwd=harness.ROOT)
    with np.load(out.with_suffix(".npz")) as params:
        return EngineRun(**json.loads(out.read_text())), {k: params[k] for k in params.files}


def compare(name: str, runs: dict[str, tuple[EngineRun, dict[str, np.ndarray]]]) -> dict:
    """One table row: each engine's time and memory, their ratios, and how far apart their results are."""
    (ort_run, ort_params), (step_run, step_params) = runs["ort"], runs["step"]
    return {
        "case": name,
        "ort_ms": ort_run.step_ms,
        "step_ms": step_run.step_ms,
        "time_ratio": step_run.step_ms / ort_run.step_ms,
        "ort_peak_mb": ort_run.peak_rss_mb,
        "step_peak_mb": step_run.peak_rss_mb,
        "memory_ratio": step_run.peak_rss_mb / ort_run.peak_rss_mb,
        "max_loss_diff": float(np.max(np.abs(np.subtract(step_run.losses, ort_run.losses)))),
        "max_param_diff": max(float(np.abs(step_params[k] - ort_params[k]).max()) for k in step_params),
        "first_loss": ort_run.losses[0],
        "last_loss": ort_run.losses[-1],
    }


def table(rows: list[dict], mode: str, machine: str) -> str:
    lines = [
        f"Step graphs (plain onnxruntime) vs ORT training artifacts, mode {mode}, {machine}.",
        "",
        (
            "| bundle | ORT ms/step | step ms/step | time ratio | ORT peak MB | step peak MB | memory ratio "
            "| max loss diff | max param diff |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['ort_ms']:.1f} | {r['step_ms']:.1f} | {r['time_ratio']:.2f} | {r['ort_peak_mb']:.0f} "
            f"| {r['step_peak_mb']:.0f} | {r['memory_ratio']:.2f} | {r['max_loss_diff']:.1e} | {r['max_param_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    fig, ax = harness.figure(figsize=(7, 3.5), dpi=120)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["time_ratio"] for r in rows], 0.4, label="step time")
    ax.bar(x + 0.2, [r["memory_ratio"] for r in rows], 0.4, label="peak memory")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(x, [r["case"] for r in rows], fontsize=8)
    ax.set_ylabel("step graphs / ORT training")
    ax.legend()
    fig.tight_layout()
    harness.write_png(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = STUDY.parser(__doc__, MODES)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ", ".join(CASES))
    parser.add_argument("--batch", type=int, help="examples per step instead of the mode's (the step graph pads to its own)")
    args = parser.parse_args(argv)
    run = STUDY.start(args, MODES)
    mode, machine = run.mode, run.results["machine"]
    if args.batch is not None:
        mode = dataclasses.replace(mode, batch=args.batch)
    from edgeft.bundle import Bundle

    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        for name in args.cases.split(","):
            print(f"{name}: exporting ...", flush=True)
            bundle, features, targets = export_case(name, work, mode)
            if not Bundle.load(bundle).manifest.head.step_batch:
                skipped.append(name)  # e.g. exported without torch, or an operator the step graph cannot differentiate
                print(f"{name}: the bundle has no step graphs; left out", flush=True)
                continue
            inputs = work / f"{name}-inputs.npz"
            np.savez(inputs, features=features, targets=targets)
            rows.append(compare(name, {e: run_engine(bundle, e, inputs, mode, work) for e in ENGINES}))
            print(table(rows[-1:], args.mode, machine).splitlines()[-1], flush=True)
    run.results.update(rows=rows, skipped=skipped)
    plot(rows, run.out / "step_graphs.png")
    run.save(report)


def report(results: dict) -> str:
    """The table, and the cases left out."""
    markdown = table(results["rows"], results["mode"], results["machine"])
    if results["skipped"]:
        markdown += f"\nLeft out (their bundles ship no step graphs): {', '.join(results['skipped'])}.\n"
    return markdown


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    else:
        main()
