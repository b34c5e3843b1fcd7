"""``python -m benchmarks.quality.guard --mode quick|full``: does the guard tell a better head from a worse one?

For each data set (MiniLM + BBC News, EfficientNet-Lite0 + Fashion-MNIST,
MiniLM + Rotten Tomatoes), bundles whose head the server trained on tiny (4 to
5 per label) and ample (32 per label) data; over several seeds, a user who:

- covers every label at 2, 4, 8, 16 and 32 examples per label;
- covers 2 labels of N, at 12 and 32 per label;
- teaches a new label (a bundle exported without it; tiny server data only);
- gives 16 per label with 20% or 100% of the labels flipped (moved one label on);
- gives 16 per label of shifted inputs (inverted images; an article's end instead of its start),
  held out on shifted inputs too;
- trains with ``lr=1e15`` (a diverged run; once per data set).

Each run fits with the defaults (the guard deciding) and with ``accept="always"``
(the raw new head, the truth's reference), and a logistic-regression probe on
the same features. Held-out truth: the shipped head, the head the guard chose
and the raw new head on the held-out set. Backbone features are computed once
into a persistent cache (most of the cost); every fit runs on the numpy engine
(the same loss and AdamW as ORT's, faster for a head this small).

Writes ``results.json``, ``results.md`` and ``guard.png`` into ``--out`` (default
``docs/guard`` in full mode); bundles and features go to
``benchmarks/results/guard-work``, shared by every mode.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness

# Bundles and features are shared by every mode: the backbone is most of the cost.
STUDY = harness.Study("guard", docs={"full": "docs/guard"}, work="benchmarks/results/guard-work")
SHOTS_FULL = (2, 4, 8, 16, 32)


@dataclasses.dataclass(frozen=True)
class Mode:
    data: tuple[str, ...]
    seeds: int
    shots: tuple[int, ...]  # the user covering every label
    servers: tuple[str, ...]  # "tiny", "ample"
    scenarios: bool  # also 2 of N, new label, flipped, shifted
    test_per_class: int


MODES = {
    "smoke": Mode(data=("bbc",), seeds=1, shots=(4,), servers=("tiny",), scenarios=False, test_per_class=10),
    "quick": Mode(
        data=("bbc", "fashion", "rotten"), seeds=1, shots=(2, 8, 32), servers=("tiny", "ample"), scenarios=True, test_per_class=40
    ),
    "full": Mode(
        data=("bbc", "fashion", "rotten"), seeds=3, shots=SHOTS_FULL, servers=("tiny", "ample"), scenarios=True, test_per_class=60
    ),
}
SERVER_PER_CLASS = {"tiny": 5, "ample": 32}
POOL_PER_CLASS = 32
EPS = 1e-9  # accuracies are ratios of counts: 2 points must count as 2 points after float rounding


@dataclasses.dataclass
class DataSet:
    key: str
    name: str
    labels: list[str]
    server: dict[str, Any]  # label -> server examples (at most ample's count)
    pool: dict[str, Any]  # label -> the users' examples
    test: tuple[Any, list[str]]
    shifted_pool: dict[str, Any] | None  # the same examples, shifted
    shifted_test: tuple[Any, list[str]] | None
    source: Any  # what export_bundle exports
    export: dict[str, Any]  # ExportConfig fields


def _by_label(xs: Any, ys: list[str], labels: list[str], sizes: list[int], seed: int) -> list[dict[str, Any]]:
    rng, ys = np.random.default_rng(seed), np.asarray(ys)
    out: list[dict[str, Any]] = [{} for _ in sizes]
    for label in labels:
        rows = rng.permutation(np.flatnonzero(ys == label))
        start = 0
        for part, size in zip(out, sizes):
            part[label] = _take(xs, rows[start : start + size])
            start += size
    return out


def _take(xs: Any, rows: np.ndarray) -> Any:
    return xs[rows] if isinstance(xs, np.ndarray) else [xs[i] for i in rows]


def _flat(parts: dict[str, Any]) -> tuple[Any, list[str]]:
    labels = [label for label, xs in parts.items() for _ in range(len(xs))]
    values = list(parts.values())
    return (np.concatenate(values) if isinstance(values[0], np.ndarray) else [x for v in values for x in v]), labels


def _tail(text: str) -> str:
    """An article's last 80 words: the backbone reads its start (128 tokens), so this is another part of the source."""
    return " ".join(text.split()[-80:])


def text_data(key: str, mode: Mode, rotten_test_scale: int = 1) -> DataSet:
    from example_data import bbc_news, minilm_path, rotten_tomatoes

    texts, ys = bbc_news() if key == "bbc" else rotten_tomatoes()
    labels = sorted(set(ys))
    test_size = mode.test_per_class * (rotten_test_scale if key == "rotten" else 1)
    server, pool, test = _by_label(texts, ys, labels, [SERVER_PER_CLASS["ample"], POOL_PER_CLASS, test_size], 0)
    shifted = key == "bbc"
    return DataSet(
        key=key,
        name="MiniLM + BBC News" if key == "bbc" else "MiniLM + Rotten Tomatoes",
        labels=labels,
        server=server,
        pool=pool,
        test=_flat(test),
        shifted_pool={k: [_tail(t) for t in v] for k, v in pool.items()} if shifted else None,
        shifted_test=([_tail(t) for t in _flat(test)[0]], _flat(test)[1]) if shifted else None,
        source=minilm_path(),
        export={"license": "apache-2.0", "quantization": "int8-dynamic"},
    )


def fashion_data(mode: Mode) -> DataSet:
    from example_data import fashion_mnist
    from export.vision import VISION_MODELS

    images, ys = fashion_mnist("train")
    labels = sorted(set(ys))
    server, pool = _by_label(images, ys, labels, [SERVER_PER_CLASS["ample"], POOL_PER_CLASS], 0)
    test = _flat(_by_label(*fashion_mnist("test"), labels, [mode.test_per_class], 1)[0])
    model = VISION_MODELS["efficientnet-lite0"]
    return DataSet(
        key="fashion",
        name="EfficientNet-Lite0 + Fashion-MNIST",
        labels=labels,
        server=server,
        pool=pool,
        test=test,
        shifted_pool={k: 255 - v for k, v in pool.items()},
        shifted_test=(255 - test[0], test[1]),
        source=model.build(),
        export={"license": model.license, "quantization": "none"},
    )


def bundle(data: DataSet, work: Path, server: str, leave_out: str | None = None) -> Path:
    """The data set's bundle trained on ``server``'s count per label (all labels but ``leave_out``)."""
    from edgeft.config import ExportConfig
    from export import ServerData

    path = work / f"{data.key}-{server}{'-without-' + leave_out if leave_out else ''}"
    n = SERVER_PER_CLASS[server]
    X, y = _flat({k: v[:n] for k, v in data.server.items() if k != leave_out})
    return harness.cached_bundle(path, data.source, ServerData(X, y), ExportConfig(name=f"guard-{path.name}", **data.export))


def user(data: DataSet, labels: list[str], shots: int, seed: int, shifted: bool = False) -> tuple[Any, list[str]]:
    rng = np.random.default_rng(seed)
    pool = data.shifted_pool if shifted else data.pool
    return _flat({label: _take(pool[label], rng.permutation(len(pool[label]))[:shots]) for label in labels})


def scenarios(data: DataSet, mode: Mode, server: str) -> list[dict[str, Any]]:
    """(scenario, user labels, shots, flipped share, shifted, new label) of one bundle."""
    out = [{"scenario": f"all labels × {k}", "labels": data.labels, "shots": k} for k in mode.shots]
    if not mode.scenarios:
        return out
    two = data.labels[:2]
    if len(data.labels) > 2:
        out += [{"scenario": f"2 of {len(data.labels)} × {k}", "labels": two, "shots": k} for k in (12, 32)]
        if server == "tiny":
            out.append({"scenario": "new label × 16", "labels": data.labels, "shots": 16, "new": data.labels[-1]})
    out += [{"scenario": f"{int(f * 100)}% flipped × 16", "labels": data.labels, "shots": 16, "flip": f} for f in (0.2, 1.0)]
    if data.shifted_pool is not None:
        out.append({"scenario": "shifted × 16", "labels": data.labels, "shots": 16, "shifted": True})
    return out


def flipped(y: list[str], labels: list[str], share: float, seed: int) -> list[str]:
    """``share`` of the labels moved one label on (in the label order), chosen at random."""
    rng = np.random.default_rng(seed + 7)
    moved = set(rng.permutation(len(y))[: round(share * len(y))].tolist())
    return [labels[(labels.index(v) + 1) % len(labels)] if i in moved else v for i, v in enumerate(y)]


def probe(p: Any, X: Any, y: list[str], test: tuple[Any, list[str]]) -> float:
    """Logistic regression on the same backbone features: the bar the issue sets."""
    from sklearn.linear_model import LogisticRegression

    return float(LogisticRegression(max_iter=2000).fit(p.transform(X), y).score(p.transform(test[0]), test[1]))


def one_run(p: Any, data: DataSet, s: dict[str, Any], seed: int) -> dict[str, Any]:
    """Shipped, chosen (the guard) and raw new head on the held-out set, for one scenario and seed."""
    X, y = user(data, s["labels"], s["shots"], 1000 * s["shots"] + seed, s.get("shifted", False))
    if "flip" in s:
        y = flipped(y, data.labels, s["flip"], seed)
    test = data.shifted_test if s.get("shifted") else data.test
    truth = np.asarray(test[1])
    mine = np.isin(truth, s["labels"])
    p.rollback(0)
    shipped = p.predict(test[0]) == truth
    extra = {"new_labels": "add"} if "new" in s else {}
    p.fit(X, y, seed=seed, **extra)
    r = p.report_
    chosen = p.predict(test[0]) == truth
    p.rollback(0)
    p.fit(X, y, seed=seed, accept="always", **extra)
    raw = p.predict(test[0]) == truth
    return {
        "scenario": s["scenario"],
        "seed": seed,
        "accepted": r.accepted,
        "mix_weight": r.mix_weight,
        "reason": r.reason,
        "family": r.to_dict()["family"],
        "shipped": float(shipped.mean()),
        "chosen": float(chosen.mean()),
        "raw": float(raw.mean()),
        "probe": probe(p, X, y, test) if s["labels"] == data.labels and "flip" not in s and "new" not in s else None,
        "shipped_user": float(shipped[mine].mean()),
        "chosen_user": float(chosen[mine].mean()),
        "raw_user": float(raw[mine].mean()),
        "shipped_other": float(shipped[~mine].mean()) if (~mine).any() else None,
        "chosen_other": float(chosen[~mine].mean()) if (~mine).any() else None,
        "raw_other": float(raw[~mine].mean()) if (~mine).any() else None,
    }


def diverged(p: Any, data: DataSet) -> dict[str, Any]:
    """``fit(lr=1e15)``: refused whatever accept says, and the saved state loads."""
    import tempfile

    from device_runtime import Personalizer

    X, y = user(data, data.labels, 8, 0)
    p.rollback(0)
    p.fit(X, y, lr=1e15, epochs=5, accept="always")
    refused = not p.report_.accepted
    with tempfile.TemporaryDirectory() as folder:
        p.save(folder)
        Personalizer.load(folder)
    return {"scenario": "lr=1e15, accept=always", "refused": refused, "state_loads": True, "reason": p.report_.reason}


def runs(data: DataSet, mode: Mode, work: Path) -> dict[str, Any]:
    from device_runtime import Personalizer
    from edgeft.config import RuntimeConfig

    runtime = RuntimeConfig(cache_dir=str(work / "features"), engine="numpy")
    out: dict[str, Any] = {}
    for server in mode.servers:
        p = Personalizer.from_bundle(bundle(data, work, server), runtime=runtime)
        rows = []
        for s in scenarios(data, mode, server):
            q = p
            if "new" in s:
                q = Personalizer.from_bundle(bundle(data, work, server, leave_out=s["new"]), runtime=runtime)
            rows += [one_run(q, data, s, seed) for seed in range(mode.seeds)]
            print(f"{data.name}, {server} server: {s['scenario']} done", flush=True)
        out[server] = {"rows": rows, "guard_examples": p.bundle.manifest.head.guard_examples}
        if server == mode.servers[0]:
            out["diverged"] = diverged(p, data)
    return out


def verdict_error(r: dict[str, Any]) -> str | None:
    """Where the guard disagrees with the held-out truth: a refused head 2+ points better, or a head shipped 1+ worse."""
    if not r["accepted"] and r["raw"] - r["shipped"] >= 0.02 - EPS:
        return "refused a better head"
    if r["accepted"] and r["chosen"] - r["shipped"] <= -0.01 + EPS:
        return "shipped a worse head"
    return None


def clear(r: dict[str, Any]) -> bool:
    """The truth is clear: the raw new head is 2+ points better or 1+ point worse than the shipped one."""
    gain, shipped = r["raw"] - r["shipped"], r["chosen"] - r["shipped"]
    return gain >= 0.02 - EPS or gain <= -0.01 + EPS or shipped <= -0.01 + EPS


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name in dict.fromkeys(r["scenario"] for r in rows):
        group = [r for r in rows if r["scenario"] == name]
        cell = {"scenario": name, "runs": len(group), "accepted": sum(r["accepted"] for r in group)}
        for key in (
            "shipped",
            "chosen",
            "raw",
            "probe",
            "shipped_other",
            "chosen_other",
            "raw_other",
            "shipped_user",
            "chosen_user",
            "raw_user",
        ):
            values = [r[key] for r in group if r[key] is not None]
            cell[key] = (float(np.mean(values)), float(np.std(values))) if values else None
        cell["mixed"] = sum(r["accepted"] and r["mix_weight"] != 1.0 for r in group)
        cell["errors"] = [f"seed {r['seed']}: {e}" for r in group if (e := verdict_error(r))]
        out.append(cell)
    return out


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets over every data set and bundle."""
    rows = [r for d in results["data_sets"].values() for s in ("tiny", "ample") if s in d for r in d[s]["rows"]]
    clear_rows = [r for r in rows if clear(r)]
    agree = sum(verdict_error(r) is None for r in clear_rows)
    probe_cells = [
        (name, s, c)
        for name, d in results["data_sets"].items()
        for s in ("tiny", "ample")
        if s in d
        for c in d[s]["cells"]
        if c["scenario"].startswith("all labels") and c["probe"]
    ]
    below = [
        f"{n} {s} {c['scenario']}: {c['chosen'][0]:.3f} vs probe {c['probe'][0]:.3f}"
        for n, s, c in probe_cells
        if c["chosen"][0] < c["probe"][0]
    ]
    two = [r for r in rows if r["scenario"].startswith("2 of")]
    other_loss = min((r["chosen_other"] - r["shipped_other"] for r in two), default=float("nan"))
    gain = sum(r["chosen_user"] - r["shipped_user"] for r in two)
    raw_gain = sum(r["raw_user"] - r["shipped_user"] for r in two)
    flipped = [r for r in rows if r["scenario"].startswith("100% flipped")]
    return {
        "clear_runs": len(clear_rows),
        "agreement": agree / len(clear_rows) if clear_rows else float("nan"),
        "probe_cells": len(probe_cells),
        "below_probe": below,
        "two_of_n_worst_other_change": other_loss,
        "two_of_n_gain_share": gain / raw_gain if raw_gain > 0 else float("nan"),
        "flipped_refused": f"{sum(not r['accepted'] for r in flipped)} of {len(flipped)}",
        "diverged_refused": all(d["diverged"]["refused"] for d in results["data_sets"].values()),
    }


def _mean(v: tuple[float, float] | None) -> str:
    return "–" if v is None else f"{v[0]:.3f} ± {v[1]:.3f}"


def markdown(results: dict[str, Any]) -> str:
    t = results["targets"]
    lines = [
        harness.heading(results),
        "",
        "Targets:",
        (
            f"- guard agrees with held-out truth on {100 * t['agreement']:.1f}% of {t['clear_runs']} clear runs "
            f"({'met' if t['agreement'] >= 0.95 else 'MISSED'}: at least 95%)"
        ),
        (
            f"- user covering every label at or above the LR probe: {t['probe_cells'] - len(t['below_probe'])} of {t['probe_cells']} cells "
            f"({'met' if not t['below_probe'] else 'MISSED: ' + '; '.join(t['below_probe'])})"
        ),
        (
            f"- 2 of N: worst change on the other labels {100 * t['two_of_n_worst_other_change']:+.1f} points "
            f"({'met' if t['two_of_n_worst_other_change'] >= -0.01 else 'MISSED'}: at most 1 lost), user-label gain kept "
            f"{100 * t['two_of_n_gain_share']:.0f}% of the raw new head's ({'met' if t['two_of_n_gain_share'] >= 0.9 else 'MISSED'}: at least 90%)"
        ),
        f"- 100% flipped refused: {t['flipped_refused']}; lr=1e15 refused and its state loads: {t['diverged_refused']}",
        "",
    ]
    for name, d in results["data_sets"].items():
        for server in ("tiny", "ample"):
            if server not in d:
                continue
            lines += [
                f"### {name}, {server} server data ({SERVER_PER_CLASS[server]} per label; {d[server]['guard_examples']} guard rows)",
                "",
                '| user | shipped | LR probe | guard\'s choice | raw new head (`accept="always"`) | accepted (mixes) | other labels: shipped → chosen | disagreements |',
                "|---|---|---|---|---|---|---|---|",
            ]
            for c in d[server]["cells"]:
                other = "–" if c["shipped_other"] is None else f"{c['shipped_other'][0]:.3f} → {c['chosen_other'][0]:.3f}"
                lines.append(
                    f"| {c['scenario']} | {_mean(c['shipped'])} | {_mean(c['probe'])} | {_mean(c['chosen'])} | {_mean(c['raw'])} | "
                    f"{c['accepted']} of {c['runs']} ({c['mixed']}) | {other} | {'; '.join(c['errors']) or '–'} |"
                )
            lines.append("")
        lines += [
            f"Diverged run ({d['diverged']['scenario']}): refused {d['diverged']['refused']}: {d['diverged']['reason']}",
            "",
        ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    sets = list(results["data_sets"])
    fig, axes = harness.figure(2, len(sets), figsize=(4 * len(sets), 6.5), squeeze=False, dpi=110)
    for j, name in enumerate(sets):
        for i, server in enumerate(("tiny", "ample")):
            ax = axes[i][j]
            if server not in results["data_sets"][name]:
                continue
            cs = [c for c in results["data_sets"][name][server]["cells"] if c["scenario"].startswith("all labels")]
            shots = [int(c["scenario"].split("× ")[1]) for c in cs]
            for key, style in (("shipped", ":"), ("probe", "--"), ("raw", "-."), ("chosen", "-")):
                ax.plot(shots, [c[key][0] if c[key] else np.nan for c in cs], style, marker="o", label=key)
            ax.set_xscale("log", base=2)
            ax.set_title(f"{name}\n{server} server data", fontsize=9)
            ax.set_xlabel("user's examples per label")
        axes[0][j].legend(fontsize=7)
    axes[0][0].set_ylabel("held-out accuracy")
    axes[1][0].set_ylabel("held-out accuracy")
    fig.tight_layout()
    harness.write_png(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = STUDY.parser(__doc__, MODES)
    parser.add_argument("--data", default=None, help="data sets, comma-separated (default: the mode's)")
    parser.add_argument(
        "--rotten-test-scale",
        type=int,
        default=1,
        help="Rotten Tomatoes' held-out set, times the mode's: 2 labels, so 120 rows make one point 1.2 rows (default: 1)",
    )
    args = parser.parse_args(argv)
    run = STUDY.start(args, MODES, data_sets={})
    mode, work, results = run.mode, run.work, run.results
    for key in args.data.split(",") if args.data else mode.data:
        data = fashion_data(mode) if key == "fashion" else text_data(key, mode, args.rotten_test_scale)
        found = runs(data, mode, work)
        for server in mode.servers:
            found[server]["cells"] = cells(found[server]["rows"])
        results["data_sets"][data.name] = found
        # Written after every data set: a long run leaves what it measured so far.
        results["targets"] = targets(results)
        plot(results, run.out / "guard.png")
        run.save(markdown)


if __name__ == "__main__":
    main()
