"""``python -m benchmarks.quality.monitoring --mode quick``: the windowed drift test's false alarms and detection, and augmentation.

Drift (MiniLM on BBC News, EfficientNet-Lite0 on Fashion-MNIST): bundles are
exported on a random sample of each data set, so that held-out data comes
from the same distribution; windows of held-out features are tested against
the bundle's reference sample (false alarms), and streams switch to Rotten
Tomatoes snippets, inverted or rotated images (detection). Augmentation: a head
fitted on the device on 2, 4 and 16 Fashion-MNIST images per class, with and
without 4 augmented views per image, at the same number of training steps.

Writes ``results.json``, ``results.md``, ``drift.png`` and ``augmentation.png``
into ``--out`` (default ``benchmarks/results/monitoring-MODE``). Quick: about
10 minutes on 2 shared cores, most of it backbone features.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.quality import drift_rates

STUDY = harness.Study("monitoring", work="{out}/cache")


@dataclasses.dataclass(frozen=True)
class Mode:
    server: int  # random examples each bundle is exported on (its reference sample)
    text_pool: int  # held-out BBC texts and Rotten Tomatoes snippets
    image_pool: int  # held-out Fashion-MNIST test images, and as many inverted and rotated
    windows: int  # random windows for the false-alarm rate
    trials: int  # switching streams per window size
    window_sizes: tuple[int, ...]
    seeds: int  # augmentation: seeds per images-per-class
    shots: tuple[int, ...] = (2, 4, 16)
    views: int = 4
    epochs: int = 30  # augmented runs; plain runs get (1 + views) times as many, for equal steps


MODES = {
    "smoke": Mode(server=60, text_pool=120, image_pool=60, windows=10, trials=2, window_sizes=(30,), seeds=1, shots=(2,)),
    "quick": Mode(server=300, text_pool=600, image_pool=400, windows=200, trials=20, window_sizes=(50, 100, 200), seeds=3),
}


def text_features(cache: Path, mode: Mode, seed: int) -> dict[str, Any]:
    from device_runtime import Personalizer
    from edgeft.config import ExportConfig, Quantization, RuntimeConfig
    from example_data import bbc_news, minilm_path, rotten_tomatoes
    from export import ServerData

    texts, labels = bbc_news()
    order = np.random.default_rng(seed).permutation(len(texts))
    server, held_out = order[: mode.server], order[mode.server : mode.server + mode.text_pool]
    bundle = harness.cached_bundle(
        cache / "minilm-bbc",
        minilm_path(),
        ServerData([texts[i] for i in server], [labels[i] for i in server]),
        # int8-dynamic by name, as its figures were measured (auto would choose per mode's server size).
        ExportConfig(name="minilm-bbc-monitoring", quantization=Quantization.INT8_DYNAMIC),
    )
    reviews, _ = rotten_tomatoes()
    chosen = np.random.default_rng(seed).choice(len(reviews), mode.text_pool, replace=False)
    p = Personalizer.from_bundle(bundle, runtime=RuntimeConfig(cache_dir=str(cache / "features")))
    return {
        "bundle": bundle,
        "normal": p.transform([texts[i] for i in held_out]),
        "shifts": {"Rotten Tomatoes snippets": p.transform([reviews[i] for i in chosen])},
    }


def image_features(cache: Path, mode: Mode, seed: int) -> dict[str, Any]:
    from device_runtime import Personalizer
    from edgeft.config import ExportConfig, Quantization, RuntimeConfig
    from example_data import FASHION_MNIST_CLASSES, fashion_mnist
    from export import ServerData
    from export.vision import VISION_MODELS

    train_x, train_y = fashion_mnist("train")
    test_x, _ = fashion_mnist("test")
    server = np.random.default_rng(seed).choice(len(train_x), mode.server, replace=False)
    model = VISION_MODELS["efficientnet-lite0"]
    config = ExportConfig(name="effnet-fashion-monitoring", quantization=Quantization.NONE, license=model.license)
    for name, data in (
        ("effnet-fashion", ServerData(train_x[server], [train_y[i] for i in server])),
        ("effnet-untrained", ServerData(label_set=FASHION_MNIST_CLASSES)),
    ):
        harness.cached_bundle(cache / name, model.build(), data, config)
    held = test_x[np.random.default_rng(seed).choice(len(test_x), 2 * mode.image_pool, replace=False)]
    normal, other = held[: mode.image_pool], held[mode.image_pool :]
    p = Personalizer.from_bundle(cache / "effnet-fashion", runtime=RuntimeConfig(cache_dir=str(cache / "features")))
    shifts = {
        "inverted images": 255 - other[: mode.image_pool // 2],
        "rotated images (90°)": np.rot90(other[mode.image_pool // 2 :], axes=(1, 2)),
    }
    return {
        "bundle": cache / "effnet-fashion",
        "normal": p.transform(normal),
        "shifts": {k: p.transform(np.ascontiguousarray(v)) for k, v in shifts.items()},
        "train": (train_x, train_y),
        "server": set(server.tolist()),
    }


def drift_results(name: str, data: dict[str, Any], mode: Mode, seed: int) -> dict[str, Any]:
    from edgeft import layout

    with np.load(data["bundle"] / layout.REFERENCE_SAMPLE) as arrays:
        reference = arrays["features"]
    stats = json.loads((data["bundle"] / layout.REFERENCE).read_text())
    normal = data["normal"]
    out: dict[str, Any] = {"reference_sample": len(reference), "false_alarms": [], "detection": []}
    for window in mode.window_sizes:
        out["false_alarms"].append(drift_rates.false_alarms(normal, reference, window, mode.windows, seed))
        for shift, shifted in data["shifts"].items():
            row = drift_rates.detection(normal, shifted, reference, window, mode.trials, seed)
            out["detection"].append({"shift": shift, **row})
    repeated = np.concatenate([normal] * (1 + drift_rates.CUMULATIVE_BEFORE // len(normal)))
    out["cumulative_before"] = {
        shift: {"delay": drift_rates.cumulative_delay(repeated, shifted, stats), "shifted_examples": len(shifted)}
        for shift, shifted in data["shifts"].items()
    }
    print(f"{name}: drift done", flush=True)
    return out


def augmentation(cache: Path, data: dict[str, Any], mode: Mode) -> list[dict[str, Any]]:
    """Accuracy on held-out test images with and without augmented views, per images-per-class and seed."""
    from device_runtime import Personalizer
    from edgeft.config import RuntimeConfig, TrainConfig
    from example_data import fashion_mnist

    test_x, test_y = fashion_mnist("test", per_class=50, seed=99)
    train_x, train_y = data["train"]
    labels = np.asarray(train_y)
    runtime = RuntimeConfig(cache_dir=str(cache / "features"))
    rows = []
    for seed in range(mode.seeds):
        rng = np.random.default_rng(100 + seed)
        eligible = [
            np.array([i for i in rng.permutation(np.flatnonzero(labels == c))[:200] if i not in data["server"]])
            for c in sorted(set(train_y))
        ]
        for shots in mode.shots:
            pick = np.sort(np.concatenate([e[:shots] for e in eligible]))
            X, y = train_x[pick], [train_y[i] for i in pick]
            for views in (0, mode.views):
                config = TrainConfig(
                    epochs=mode.epochs * (1 + mode.views) if views == 0 else mode.epochs,
                    seed=seed,
                    validation_fraction=0.0,
                    accept="always",
                    augment_views=views,
                    augment_hflip=True,
                )
                p = Personalizer.from_bundle(cache / "effnet-untrained", config=config, runtime=runtime)
                p.fit(X, y)
                rows.append(
                    {
                        "seed": seed,
                        "per_class": shots,
                        "views": views,
                        "accuracy": p.score(test_x, test_y),
                        "feature_seconds": p.report_.feature_seconds,
                        "train_examples": p.report_.train_examples,
                    }
                )
                print(f"augmentation seed {seed} {shots}/class views {views}: {rows[-1]['accuracy']:.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = STUDY.parser(__doc__, MODES)
    parser.add_argument("--seed", type=int, default=0, help="draws the bundles' server examples and the pools (default: 0)")
    args = parser.parse_args(argv)
    run = STUDY.start(args, MODES, level=0.01)
    mode, cache = run.mode, run.work
    text = text_features(cache, mode, args.seed)
    images = image_features(cache, mode, args.seed)
    print(f"features ready after {time.perf_counter() - run.started:.0f} s", flush=True)
    run.results["drift"] = {
        "BBC News (MiniLM)": drift_results("text", text, mode, args.seed),
        "Fashion-MNIST (EfficientNet-Lite0)": drift_results("images", images, mode, args.seed),
    }
    run.results["augmentation"] = augmentation(cache, images, mode)
    plots(run.results, run.out)
    run.save(markdown)


def markdown(run: dict[str, Any]) -> str:
    lines = [
        f"# Drift monitoring and augmentation ({run['mode']} run, {run['seconds']:.0f} s)",
        "",
        "## False alarms: windows of held-out data from the export's own distribution",
        "",
        "| data | reference sample | window | windows | alarm rate at level 0.01 | at level 0.05 |",
        "|---|---|---|---|---|---|",
    ]
    for data, d in run["drift"].items():
        for r in d["false_alarms"]:
            lines.append(
                f"| {data} | {d['reference_sample']} | {r['window']} | {r['windows']} | {r['alarm_rate_0.01']:.3f} | "
                f"{r['alarm_rate_0.05']:.3f} |"
            )
    lines += [
        "",
        "## Detection after a switch (level 0.01)",
        "",
        (
            "| data | switch to | window | detected | median delay (examples) | worst delay | checked every | "
            "cumulative rule after 1000 normal (before) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for data, d in run["drift"].items():
        for r in d["detection"]:
            before = d["cumulative_before"][r["shift"]]
            lines.append(
                f"| {data} | {r['shift']} | {r['window']} | {r['detection_rate']:.0%} of {r['trials']} | "
                f"{_num(r['median_delay'])} | {_num(r['max_delay'])} | {r['check_every']} | "
                f"{_before(before)} |"
            )
    lines += [
        "",
        "## Augmentation: Fashion-MNIST, EfficientNet-Lite0, head fitted on the device",
        "",
        "| per class | seeds | accuracy without | with 4 views | gain (points) | feature seconds without | with |",
        "|---|---|---|---|---|---|---|",
    ]
    for shots, plain, aug in _augmentation_pairs(run):
        lines.append(
            f"| {shots} | {len(plain)} | {np.mean([r['accuracy'] for r in plain]):.3f} | "
            f"{np.mean([r['accuracy'] for r in aug]):.3f} | "
            f"{100 * (np.mean([r['accuracy'] for r in aug]) - np.mean([r['accuracy'] for r in plain])):+.1f} | "
            f"{np.mean([r['feature_seconds'] for r in plain]):.1f} | {np.mean([r['feature_seconds'] for r in aug]):.1f} |"
        )
    return "\n".join(lines) + "\n"


def plots(run: dict[str, Any], out: Path) -> None:
    fig, (left, right) = harness.figure(1, 2, figsize=(11, 4), dpi=120)
    for data, d in run["drift"].items():
        left.plot([r["window"] for r in d["false_alarms"]], [r["alarm_rate_0.01"] for r in d["false_alarms"]], "o-", label=data)
        for shift in d["cumulative_before"]:
            rows = [r for r in d["detection"] if r["shift"] == shift]
            right.plot([r["window"] for r in rows], [r["median_delay"] or np.nan for r in rows], "o-", label=f"{data} → {shift}")
    left.axhline(run["level"], color="grey", ls="--", label="stated level 0.01")
    left.set(xlabel="window (predictions)", ylabel="false-alarm rate", title="False alarms on export-like data")
    right.set(xlabel="window (predictions)", ylabel="median delay (shifted examples)", title="Detection delay after a switch")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    harness.write_png(fig, out / "drift.png")
    fig, ax = harness.figure(figsize=(5.5, 4), dpi=120)
    pairs = _augmentation_pairs(run)
    for rows_of, label in ((1, "without"), (2, "with 4 augmented views")):
        ax.plot([p[0] for p in pairs], [np.mean([r["accuracy"] for r in p[rows_of]]) for p in pairs], "o-", label=label)
    ax.set(xscale="log", xlabel="images per class", ylabel="test accuracy", title="Fashion-MNIST, EfficientNet-Lite0 head")
    ax.set_xticks([p[0] for p in pairs], [str(p[0]) for p in pairs])
    ax.legend()
    fig.tight_layout()
    harness.write_png(fig, out / "augmentation.png")


def _augmentation_pairs(run: dict[str, Any]) -> list[tuple[int, list[dict], list[dict]]]:
    rows = run["augmentation"]
    return [
        (
            s,
            [r for r in rows if r["per_class"] == s and r["views"] == 0],
            [r for r in rows if r["per_class"] == s and r["views"] > 0],
        )
        for s in sorted({r["per_class"] for r in rows})
    ]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _before(before: dict[str, Any]) -> str:
    if before["delay"] is None:
        return f"no alarm after all {before['shifted_examples']} shifted examples"
    return f"{before['delay']} examples"


if __name__ == "__main__":
    main()
