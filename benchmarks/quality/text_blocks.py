"""``python -m benchmarks.quality.text_blocks --mode quick``: does training the encoder's last blocks on the device beat the head alone?

A device learns a text task from its user's own examples (8, 32 or 128 per
label; quick mode one seed on Rotten Tomatoes, full mode three seeds and BBC too), starting from the shipped bundle, in
four ways, one bundle each (its head trained at export on ``server_per_class``
server examples per label, each bundle at its own shipped learning rate):

- ``head only``: the frozen MiniLM's pooled features into the head (today's text bundles);
- ``last block`` and ``last 2 blocks``: the encoder cut before its last 1 or 2 layers
  (``--device-trainable-blocks``); those layers train with the head;
- ``LoRA r8, last 2``: the same cut, the last 2 layers' weights frozen, rank-8 LoRA
  on their attention projections trains with the head (``--device-lora 8``).

Measured on a held-out set: accuracy; the device's training time per epoch
(the frozen part's pass over the examples is reported apart);
peak memory (VmHWM of a device process that loads the bundle, fits and scores,
one process per run, no torch in it, with a feature cache of its own, so every
run computes its features through the frozen part as a device's first fit
does); the bundle's size on disk.

Rotten Tomatoes (fresh / rotten) and BBC News (5 topics). The issue's target:
on Rotten Tomatoes at 128 per label, trainable blocks at least 4 points above
the head alone, at a peak memory under twice the head alone's.

Writes ``results.json``, ``results.md`` and ``text-blocks.png`` into ``--out``
(default ``docs/text-blocks`` in quick mode); the bundles are kept in
``benchmarks/results/text-blocks-MODE-work``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness

STUDY = harness.Study("text-blocks", docs={"quick": "docs/text-blocks"})

# name -> (device_trainable_blocks, device_lora_rank)
VARIANTS: dict[str, tuple[int, int]] = {
    "head only": (0, 0),
    "last block": (1, 0),
    "last 2 blocks": (2, 0),
    "LoRA r8, last 2": (2, 8),
}
HEAD_ONLY = "head only"
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Mode:
    shots: tuple[int, ...]  # the user's examples per label
    seeds: int
    test_per_class: int
    epochs: int | None  # None: each bundle's own default, what a user gets
    data: tuple[str, ...]  # data sets run by default
    bbc_shots: tuple[int, ...]  # BBC's articles are long (128 tokens, 5 labels): its largest size costs most
    batch_size: int | None = None  # None: each bundle's own default; --batch-size sets it for every way of training
    variants: tuple[str, ...] = tuple(VARIANTS)  # --variants: the ways of training run (and bundles exported)
    # --device-python: the interpreter of the device runs (a CPython 3.13 venv with plain onnxruntime, say); None: this one
    device_python: str | None = None


MODES = {
    "smoke": Mode(shots=(8,), seeds=1, test_per_class=20, epochs=2, data=("rt",), bbc_shots=(8,)),
    "quick": Mode(shots=(8, 32, 128), seeds=1, test_per_class=200, epochs=10, data=("rt",), bbc_shots=(8, 32)),
    "full": Mode(shots=(8, 32, 128), seeds=3, test_per_class=250, epochs=None, data=("rt", "bbc"), bbc_shots=(8, 32, 128)),
}


@dataclasses.dataclass(frozen=True)
class DataSet:
    key: str
    name: str
    max_length: int  # tokens the device reads per text: the cut bundles cache max_length x (hidden + 1) floats per text
    server_per_class: int  # what the shipped head is trained on


DATA_SETS = {
    # Rotten Tomatoes snippets are one sentence: 64 tokens cover nearly all of them.
    "rt": DataSet("rt", "Rotten Tomatoes", max_length=64, server_per_class=50),
    "bbc": DataSet("bbc", "BBC News", max_length=128, server_per_class=16),
}


def load(key: str) -> tuple[list[str], list[str]]:
    from example_data import bbc_news, rotten_tomatoes

    return {"rt": rotten_tomatoes, "bbc": bbc_news}[key]()


def export_bundles(data: DataSet, server: tuple[list[str], list[str]], work: Path, variants: tuple[str, ...]) -> dict[str, Path]:
    """One bundle per way of training, its head trained on the same server examples."""
    from edgeft.config import ExportConfig
    from example_data import minilm_path
    from export import ServerData

    bundles = {}
    for variant in variants:
        blocks, rank = VARIANTS[variant]
        config = ExportConfig(
            name=f"minilm-{data.key}-b{blocks}-r{rank}",
            license="apache-2.0",
            quantization="int8-dynamic",
            accept_quality_loss=True,
            max_length=data.max_length,
            device_trainable_blocks=blocks,
            device_lora_rank=rank,
        )
        bundle = harness.cached_bundle(work / f"{data.key}-b{blocks}-r{rank}", minilm_path(), ServerData(*server), config)
        bundles[variant] = bundle
    return bundles


def device_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a process of its own (``--run``): load the bundle, fit on the user's examples, score held out."""
    from device_runtime import Personalizer
    from edgeft.config import RuntimeConfig

    harness.quiet()  # the benchmark's own bundles, and long texts
    p = Personalizer.from_bundle(spec["bundle"], runtime=RuntimeConfig(cache_dir=spec["cache"]))
    p.fit(
        spec["X"],
        spec["y"],
        epochs=spec["epochs"],
        batch_size=spec["batch_size"],
        seed=spec["seed"],
        validation_fraction=0.0,
        accept="always",
    )
    report = p.report_.to_dict()
    accuracy = p.score(spec["test_x"], spec["test_y"])
    return {
        "engine": p.engine.value,
        "python": sys.version.split()[0],
        "accuracy": float(accuracy),
        "epochs": report["epochs"],
        "seconds_per_epoch": report["train_seconds"] / max(report["epochs"], 1),
        "feature_seconds": report["feature_seconds"],
        "peak_rss_mb": harness.peak_rss_mb(),
    }


def in_child(spec: dict[str, Any], python: str | None = None) -> dict[str, Any]:
    """:func:`device_run` in a fresh interpreter (``python``, else this one) with an empty feature cache, so that its
    peak memory is the run's own. Another interpreter imports this checkout's edgeft (PYTHONPATH), none installed."""
    env = None if python is None else {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as folder:
        spec_path, result_path = Path(folder) / "spec.json", Path(folder) / "result.json"
        spec_path.write_text(json.dumps({**spec, "cache": str(Path(folder) / "features")}))
        command = [python or sys.executable, "-m", "benchmarks.quality.text_blocks", "--run", str(spec_path), str(result_path)]
        subprocess.run(command, check=True, cwd=REPO, env=env)
        return json.loads(result_path.read_text())


def runs(data: DataSet, mode: Mode, work: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The labels, and one row per (shots, seed, way of training); every way sees the same examples."""
    from example_data import split_per_class

    texts, labels = load(data.key)
    shots_run = mode.bbc_shots if data.key == "bbc" else mode.shots
    classes, per_seed = sorted(set(labels)), max(shots_run)
    server, test, pool = split_per_class(
        texts, labels, [data.server_per_class, mode.test_per_class, per_seed * mode.seeds], seed=0
    )
    bundles = export_bundles(data, server, work, mode.variants)
    rows = []
    for shots in shots_run:
        for seed in range(mode.seeds):
            X, y = user_examples(pool, shots, seed, per_seed)
            for variant, bundle in bundles.items():
                spec = {
                    "bundle": str(bundle),
                    "X": X,
                    "y": y,
                    "test_x": test[0],
                    "test_y": test[1],
                    "epochs": mode.epochs,
                    "batch_size": mode.batch_size,
                    "seed": seed,
                }
                rows.append({"shots": shots, "seed": seed, "variant": variant, **in_child(spec, mode.device_python)})
                print(f"{data.name} {shots}/label seed {seed} {variant}: {rows[-1]['accuracy']:.3f}", flush=True)
    return classes, rows


def user_examples(pool: tuple[list[str], list[str]], shots: int, seed: int, per_seed: int) -> tuple[list[str], list[str]]:
    """The first ``shots`` of seed ``seed``'s own ``per_seed`` examples of every label: seeds never share an
    example, and a seed's 8 examples are among its 32 (the pool is shuffled already)."""
    X, y = [], []
    for label in sorted(set(pool[1])):
        rows = [i for i, v in enumerate(pool[1]) if v == label][seed * per_seed : seed * per_seed + shots]
        X += [pool[0][i] for i in rows]
        y += [label] * len(rows)
    return X, y


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means (and the spread) over seeds per (shots, way of training), in the documented order."""
    out = []
    for shots in sorted({r["shots"] for r in rows}):
        for variant in VARIANTS:
            group = [r for r in rows if r["shots"] == shots and r["variant"] == variant]
            if not group:
                continue
            accuracy = [r["accuracy"] for r in group]
            out.append(
                {
                    "shots": shots,
                    "variant": variant,
                    "accuracy": float(np.mean(accuracy)),
                    "accuracy_sd": float(np.std(accuracy)),
                    "runs": len(group),
                    "seconds_per_epoch": float(np.median([r["seconds_per_epoch"] for r in group])),
                    "feature_seconds": float(np.median([r["feature_seconds"] for r in group])),
                    "peak_rss_mb": float(max(r["peak_rss_mb"] for r in group)),
                }
            )
    return out


def targets(table: list[dict[str, Any]], shots: int = 128) -> dict[str, Any]:
    """The issue's targets at ``shots`` per label: the best trainable-block way against the head alone."""
    at = {c["variant"]: c for c in table if c["shots"] == shots}
    if HEAD_ONLY not in at or len(at) < 2:
        return {"shots": shots, "measured": False}
    head = at[HEAD_ONLY]
    best = max((c for v, c in at.items() if v != HEAD_ONLY), key=lambda c: c["accuracy"])
    gain, memory = best["accuracy"] - head["accuracy"], best["peak_rss_mb"] / head["peak_rss_mb"]
    return {
        "shots": shots,
        "measured": True,
        "best": best["variant"],
        "gain_points": 100 * gain,
        "gain_met": gain >= 0.04,
        "memory_ratio": memory,
        "memory_met": memory < 2.0,
    }


def markdown(results: dict[str, Any]) -> str:
    own = "each bundle's own default"
    epochs, batch = (results["config"].get(key) or own for key in ("epochs", "batch_size"))
    run = f"Mode `{results['mode']}` on {results['machine']}, {results['date']} ({results['seconds']:.0f} s in all)"
    rows = [r for data in results["data_sets"].values() for r in data.get("rows", []) if "engine" in r]
    devices = sorted({f"Python {r['python']}, engine {r['engine']} ({r['variant']})" for r in rows})
    lines = [f"{run}; epochs: {epochs}; batch size: {batch}.", ""] + ([f"Device runs: {'; '.join(devices)}.", ""] if rows else [])
    for name, data in results["data_sets"].items():
        lines += [
            (
                f"### {name} ({data['labels']} labels, max_length {data['max_length']}, shipped head trained on "
                f"{data['server_per_class']} per label, {data['test_examples']} held out)"
            ),
            "",
        ]
        t = data["targets"]
        if t["measured"]:
            lines += [
                (
                    f"At {t['shots']} per label, the best way with trainable blocks ({t['best']}) is "
                    f"{t['gain_points']:+.1f} points against the head alone ({'met' if t['gain_met'] else 'MISSED'}: "
                    f"at least +4), at {t['memory_ratio']:.2f}x its peak memory "
                    f"({'met' if t['memory_met'] else 'MISSED'}: under 2x)."
                ),
                "",
            ]
        lines += [
            (
                "| per label | way of training | accuracy (± sd over seeds) | train s / epoch | frozen part, s | "
                "peak memory MiB | bundle MB |"
            ),
            "|---|---|---|---|---|---|---|",
        ]
        for c in data["cells"]:
            lines.append(
                f"| {c['shots']} | {c['variant']} | {c['accuracy']:.3f} ± {c['accuracy_sd']:.3f} | "
                f"{c['seconds_per_epoch']:.2f} | {c['feature_seconds']:.1f} | {c['peak_rss_mb']:.0f} | "
                f"{data['bundle_mb'][c['variant']]:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    names = list(results["data_sets"])
    fig, axes = harness.figure(2, len(names), figsize=(5 * len(names), 7), squeeze=False, dpi=120)
    for j, name in enumerate(names):
        table = results["data_sets"][name]["cells"]
        for variant in VARIANTS:
            cs = [c for c in table if c["variant"] == variant]
            shots = [c["shots"] for c in cs]
            axes[0][j].errorbar(
                shots, [c["accuracy"] for c in cs], yerr=[c["accuracy_sd"] for c in cs], marker="o", capsize=3, label=variant
            )
            axes[1][j].plot(shots, [c["seconds_per_epoch"] for c in cs], marker="o", label=variant)
        axes[0][j].set_title(name)
        axes[0][j].set_ylabel("held-out accuracy")
        axes[1][j].set_ylabel("device training, s per epoch")
        axes[1][j].set_yscale("log")
        for row in axes:
            row[j].set_xscale("log", base=2)
            row[j].set_xlabel("user's examples per label")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("MiniLM on the device: the head alone, the last blocks, LoRA")
    fig.tight_layout()
    harness.write_png(fig, path)


def main(argv: list[str] | None = None) -> None:
    if argv is None and len(sys.argv) == 4 and sys.argv[1] == "--run":
        spec = json.loads(Path(sys.argv[2]).read_text())
        Path(sys.argv[3]).write_text(json.dumps(device_run(spec)))
        return
    parser = STUDY.parser(__doc__, MODES)
    parser.add_argument("--data", default=None, help="data sets, comma-separated: rt, bbc (default: the mode's)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="examples per step for every way of training (default: each bundle's own)"
    )
    parser.add_argument(
        "--variants", default=None, help=f"ways of training, comma-separated (default: all): {', '.join(VARIANTS)}"
    )
    parser.add_argument(
        "--device-python",
        default=None,
        help="interpreter of the device runs, e.g. a CPython 3.13 venv with plain onnxruntime (default: this one)",
    )
    args = parser.parse_args(argv)
    variants = tuple(args.variants.split(",")) if args.variants else tuple(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    options = {"batch_size": args.batch_size, "variants": variants, "device_python": args.device_python}
    modes = {args.mode: dataclasses.replace(MODES[args.mode], **options)}
    run = STUDY.start(args, modes, data_sets={})
    mode, work, results = run.mode, run.work, run.results
    for key in args.data.split(",") if args.data else mode.data:
        data = DATA_SETS[key]
        classes, rows = runs(data, mode, work)
        table = cells(rows)
        results["data_sets"][data.name] = {
            "labels": len(classes),
            "max_length": data.max_length,
            "test_examples": mode.test_per_class * len(classes),
            "rows": rows,
            "cells": table,
            "server_per_class": data.server_per_class,
            "targets": targets(table, max(mode.shots)),
            "bundle_mb": {
                v: harness.folder_bytes(work / f"{key}-b{b}-r{r}") / 1e6 for v, (b, r) in VARIANTS.items() if v in mode.variants
            },
        }
    plot(results, run.out / "text-blocks.png")
    run.save(markdown)


if __name__ == "__main__":
    main()
