"""Markdown tables and PNG plots from one benchmark run's results."""

from __future__ import annotations

from pathlib import Path

from benchmarks import harness
from benchmarks.speed.runners import ALTERNATIVES, EXECUTORCH, VISION_ALTERNATIVES, VISION_EXECUTORCH

MIB = 2**20
# What each exported artifact is, in the export table: edgeft's bundles (cache folders) and ExecuTorch's programs.
ARTIFACTS = {
    "bundle-int8": "edgeft bundle: MiniLM INT8 backbone + head's training artifacts",
    "bundle-fp32": "edgeft bundle: MiniLM FP32 backbone + head's training artifacts",
    "vision/bundle": "edgeft bundle: EfficientNet-Lite0 FP32 backbone + head's training artifacts",
    "text-train-fp32.pte": "ExecuTorch: MiniLM + head, one training program (portable kernels)",
    "text-backbone-fp32.pte": "ExecuTorch: MiniLM FP32 backbone, XNNPACK",
    "text-backbone-int8.pte": "ExecuTorch: MiniLM INT8 backbone, XNNPACK",
    "text-head.pte": "ExecuTorch: text head's training program",
    "vision-train-fp32.pte": "ExecuTorch: EfficientNet-Lite0 + head, one training program (portable kernels)",
    "vision-backbone-fp32.pte": "ExecuTorch: EfficientNet-Lite0 FP32 backbone, XNNPACK",
    "vision-head.pte": "ExecuTorch: image head's training program",
}


def rows(results: dict, names: tuple[str, ...], executorch: tuple[str, ...]) -> tuple[str, ...]:
    """The table's rows: edgeft and the alternatives, then ExecuTorch's that ran, the limit last."""
    return (*names[:-1], *(n for n in executorch if n in results), names[-1])


def _spread(head: dict) -> str:
    if "estimate" in head:  # a row timed on one step (runners.ONE_STEP), its headline time estimated
        e = head["estimate"]
        return f"≈ {e['median_s']:.0f} s (est.: {e['steps']} steps of {e['per_step_s']:.1f} s, one step timed)"
    return f"{head['median_s']:.2f} s ({head['min_s']:.2f}–{head['max_s']:.2f})"


def seconds(result: dict) -> float:
    """The headline's wall time: measured, or estimated from one timed step."""
    return result["headline"].get("estimate", result["headline"])["median_s"]


def personalization_table(results: dict, names: tuple[str, ...], what: str) -> list[str]:
    edgeft = seconds(results[names[0]])
    head = results[names[0]]["headline"]
    lines = [
        (
            f"Personalization of N={head['examples']} {what} for E={head['epochs']} epochs "
            f"(median of {len(head['runs_s'])} after a warm-up; min–max in brackets):"
        ),
        "",
        "| alternative | wall time | its time / edgeft's | start-up | peak RSS | torch loaded | accuracy (held-out) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        r = results[name]
        accuracy = "—" if r["accuracy"] is None else f"{r['accuracy']:.3f} (n={r['test_examples']})"
        ratio = f"≈ {seconds(r) / edgeft:.0f}x" if "estimate" in r["headline"] else f"{seconds(r) / edgeft:.2f}x"
        lines.append(
            f"| {name} | {_spread(r['headline'])} | {ratio} | {r['startup_s']:.2f} s "
            f"| {r['peak_rss_mb']:.0f} MiB | {'yes' if r['torch_loaded'] else 'no'} | {accuracy} |"
        )
    return lines


def latency_table(latency: dict) -> list[str]:
    rows = latency["latency"]
    lines = [
        f"Predict latency (ms; single article, and a batch of {latency['batch_size']}):",
        "",
        "| precision | input | path | p50 | p95 | p99 | edgeft overhead at p50 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, value in rows.items():
        precision, case, path = key.split("/")
        bare = rows[f"{precision}/{case}/bare-ort"]["p50_ms"]
        overhead = f"{(value['p50_ms'] / bare - 1) * 100:+.1f}%" if path == "edgeft" else ""
        lines.append(
            f"| {precision} | {case} | {path} | {value['p50_ms']:.1f} | {value['p95_ms']:.1f} | {value['p99_ms']:.1f} | {overhead} |"
        )
    return lines


def size_table(sizes: dict) -> list[str]:
    lines = ["| what | size |", "| --- | --- |"]
    lines += [f"| bundle, {precision} backbone | {size / MIB:.1f} MiB |" for precision, size in sizes["bundles"].items()]
    lines += [
        f"| site-packages, {name} ({len(v['distributions'])} distributions) | {v['bytes'] / MIB:.0f} MiB |"
        for name, v in sizes["install"].items()
    ]
    return lines


def _faster(results: dict, base: str, names: tuple[str, ...]) -> str:
    """ "5.1x faster than textbook-ort, ...": an alternative that is faster gets "slower than" instead."""
    own = seconds(results[base])
    ratios = [(seconds(results[n]) / own, f"{n} (est.)" if "estimate" in results[n]["headline"] else n) for n in names]
    return ", ".join(f"{r:.1f}x faster than {n}" if r >= 1 else f"{1 / r:.1f}x slower than {n}" for r, n in ratios)


def headline(results: dict) -> list[str]:
    head = results["edgeft"]["headline"]
    limit = head["median_s"] / head["backbone_pass_median_s"]
    vision = results["vision-edgeft"]["headline"]
    executorch = [
        f"{_faster(results, base, names)} ({what})"
        for base, names, what in [
            ("edgeft", tuple(n for n in EXECUTORCH if n in results), "text"),
            ("vision-edgeft", tuple(n for n in VISION_EXECUTORCH if n in results), "images"),
        ]
        if names
    ]
    against_executorch = ["", f"Against ExecuTorch it personalizes {'; '.join(executorch)}."] if executorch else []
    return [
        (
            f"**edgeft personalizes {_faster(results, 'edgeft', ('textbook-ort', 'pytorch'))}, "
            f"and takes {limit:.2f}x the time of one bare INT8 backbone pass (the limit).**"
        ),
        "",
        (
            "The ratio to the limit is measured in the edgeft process, a backbone pass after each timed run; "
            "the limit's own process (last row) gives its start-up and memory."
        ),
        "",
        (
            f"On images (EfficientNet-Lite0, FP32 backbone) it personalizes "
            f"{_faster(results, 'vision-edgeft', ('vision-textbook-ort', 'vision-pytorch'))}, "
            f"at {vision['median_s'] / vision['backbone_pass_median_s']:.2f}x the limit."
        ),
        *against_executorch,
    ]


def export_table(run: dict) -> list[str]:
    """Each artifact's export wall time and size: edgeft's bundles beside ExecuTorch's ``.pte`` programs (or their errors)."""
    lines = ["Exports (wall time of the export, size on disk):", "", "| artifact | export time | size |", "| --- | --- | --- |"]
    artifacts = {**run["exports"], **run["executorch"].get("exports", {})}
    for name, r in artifacts.items():
        what = f"{ARTIFACTS.get(name, name)} (`{name}`)"
        if "error" in r:
            lines.append(f"| {what} | failed: {r['error'].splitlines()[0][:300]} | — |")
        else:
            lines.append(f"| {what} | {r['seconds']:.1f} s | {r['bytes'] / MIB:.1f} MiB |")
    if "skipped" in run["executorch"]:
        lines += ["", f"ExecuTorch's rows are left out: {run['executorch']['skipped'].splitlines()[0]}"]
    return lines


# What personalizing each way ships: edgeft's bundle against the ExecuTorch programs its cached row runs.
SHIPPED = {
    "bundle-int8": ("text-backbone-int8.pte", "text-head.pte"),
    "bundle-fp32": ("text-backbone-fp32.pte", "text-head.pte"),
    "vision/bundle": ("vision-backbone-fp32.pte", "vision-head.pte"),
}


def _beats(name: str, base: str, figures: list[tuple[str, float | None, float | None, str, bool]]) -> list[str]:
    """A line for each (figure, theirs, ours, format, higher is better) where ``name``'s figure is better than ``base``'s."""
    return [
        f"- {name} beats {base} on {figure}: {fmt.format(theirs)} against {fmt.format(ours)}"
        for figure, theirs, ours, fmt, higher in figures
        if theirs is not None and ours is not None and (theirs > ours if higher else theirs < ours)
    ]


def executorch_wins(run: dict) -> list[str]:
    """Each figure where ExecuTorch beats edgeft on the same data or model (the docs say why)."""
    results, lines = run["results"], []
    for base, names in [("edgeft", EXECUTORCH), ("vision-edgeft", VISION_EXECUTORCH)]:
        own = results[base]
        for name in (n for n in names if n in results):
            r = results[name]
            lines += _beats(
                name,
                base,
                [
                    ("wall time", seconds(r), seconds(own), "{:.2f} s", False),
                    ("start-up", r["startup_s"], own["startup_s"], "{:.2f} s", False),
                    ("peak RSS", r["peak_rss_mb"], own["peak_rss_mb"], "{:.0f} MiB", False),
                    ("held-out accuracy", r["accuracy"], own["accuracy"], "{:.3f}", True),
                ],
            )
    programs = run["executorch"].get("exports", {})
    for bundle, needs in SHIPPED.items():
        if bundle in run["exports"] and all("bytes" in programs.get(n, {}) for n in needs):
            own, theirs = run["exports"][bundle], [programs[n] for n in needs]
            lines += _beats(
                " + ".join(needs),
                bundle,
                [
                    ("export time", sum(t["seconds"] for t in theirs), own["seconds"], "{:.1f} s", False),
                    ("size", sum(t["bytes"] for t in theirs) / MIB, own["bytes"] / MIB, "{:.1f} MiB", False),
                ],
            )
    return ["Where ExecuTorch wins a figure:", "", *(lines or ["- none in this run"])]


def markdown(run: dict) -> str:
    """The whole report: headline ratios, then one table per measure."""
    results = run["results"]
    parts = [
        headline(results),
        personalization_table(results, rows(results, ALTERNATIVES, EXECUTORCH), "BBC News articles (MiniLM)"),
        latency_table(results["latency"]),
        size_table(run["sizes"]),
        personalization_table(
            results,
            rows(results, VISION_ALTERNATIVES, VISION_EXECUTORCH),
            "Fashion-MNIST images (EfficientNet-Lite0, FP32 backbone)",
        ),
        export_table(run),
        executorch_wins(run),
    ]
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


def comparison_plot(results: dict, folder: Path) -> Path:
    """The headline run side by side: wall time and peak memory of each alternative, text and vision."""
    names = [*rows(results, ALTERNATIVES, EXECUTORCH), *rows(results, VISION_ALTERNATIVES, VISION_EXECUTORCH)]
    fig, axes = harness.figure(1, 2, figsize=(9, 1.5 + 0.25 * len(names)), dpi=100)
    for ax, key, label in [(axes[0], "median_s", "personalization wall time (s)"), (axes[1], "peak_rss_mb", "peak RSS (MiB)")]:
        values = [seconds(results[n]) if key == "median_s" else results[n][key] for n in names]
        colors = [
            "tab:green"
            if n.endswith("edgeft")
            else "tab:grey"
            if n.endswith("limit")
            else "tab:blue"
            if "executorch" in n
            else "tab:orange"
            for n in names
        ]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        if key == "median_s" and max(values) > 50 * min(values):  # ExecuTorch's training programs: minutes against seconds
            ax.set_xscale("log")
            label += ", log scale"
        ax.set_xlabel(label)
        for y, (name, v) in enumerate(zip(names, values)):
            estimated = key == "median_s" and "estimate" in results[name]["headline"]
            ax.text(
                v,
                y,
                f" ≈{v:.0f} (est.)" if estimated else f" {v:.2f}" if key == "median_s" else f" {v:.0f}",
                va="center",
                fontsize=8,
            )
        ax.margins(x=0.2)
    axes[1].set_yticklabels([])
    fig.suptitle("edgeft (green) against the alternatives (orange), ExecuTorch (blue) and the limit (grey)", fontsize=10)
    fig.tight_layout()
    return harness.write_png(fig, folder / "comparison.png")


def plots(results: dict, folder: Path) -> list[Path]:
    """The side-by-side comparison, and growth of personalization time with N and with E (log-log)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    written = [comparison_plot(results, folder)]
    for sweep, axis, label in [("n_sweep", "examples", "N examples"), ("e_sweep", "epochs", "E epochs")]:
        fig, ax = harness.figure(figsize=(5, 3.5), dpi=100)
        for name in ALTERNATIVES:
            points = results[name][sweep]
            ax.plot([p[axis] for p in points], [p["median_s"] for p in points], marker="o", label=name)
        fixed = results["edgeft"][sweep][0]
        other = "epochs" if axis == "examples" else "examples"
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="personalization wall time (s)")
        ax.set_xticks([p[axis] for p in results["edgeft"][sweep]])
        for scale in (ax.xaxis, ax.yaxis):  # plain numbers, not powers of ten, on the log axes
            scale.set_major_formatter(ScalarFormatter())
            scale.set_minor_formatter(NullFormatter())
        ax.set_title(f"Growth with {label.split()[1]} ({other} = {fixed[other]})", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(harness.write_png(fig, folder / f"growth_{axis}.png"))
    return written
