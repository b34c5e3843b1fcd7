"""The monitoring benchmark's Markdown tables and plots (``python -m benchmarks.monitoring``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
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
    fig.savefig(out / "drift.png", dpi=120)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    pairs = _augmentation_pairs(run)
    for rows_of, label in ((1, "without"), (2, "with 4 augmented views")):
        ax.plot([p[0] for p in pairs], [np.mean([r["accuracy"] for r in p[rows_of]]) for p in pairs], "o-", label=label)
    ax.set(xscale="log", xlabel="images per class", ylabel="test accuracy", title="Fashion-MNIST, EfficientNet-Lite0 head")
    ax.set_xticks([p[0] for p in pairs], [str(p[0]) for p in pairs])
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "augmentation.png", dpi=120)


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
