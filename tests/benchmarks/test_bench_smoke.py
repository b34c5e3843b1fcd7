"""The benchmark's smoke mode runs end to end and writes well-formed results.

No timing is asserted here: timings live in the benchmark's own reports.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.speed.runners import EXECUTORCH, VISION_EXECUTORCH

ALTERNATIVES = ["edgeft", "textbook-ort", "pytorch", "limit"]
VISION = ["vision-edgeft", "vision-textbook-ort", "vision-pytorch", "vision-limit"]

# The smoke run (conftest.py) includes ExecuTorch's row only where its environment is built.


def test_smoke_writes_json_markdown_and_plots(smoke_run: Path) -> None:
    run = json.loads((smoke_run / "results.json").read_text())
    assert run["mode"] == "smoke"
    assert set(run["results"]) - {*EXECUTORCH, *VISION_EXECUTORCH} == {*ALTERNATIVES, *VISION, "latency"}
    table = (smoke_run / "results.md").read_text()
    assert "**edgeft personalizes" in table
    for name in ALTERNATIVES:
        assert f"| {name} | " in table
    for plot in ("comparison.png", "growth_examples.png", "growth_epochs.png"):
        assert (smoke_run / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_alternative_reports_times_memory_and_accuracy(smoke_run: Path) -> None:
    results = json.loads((smoke_run / "results.json").read_text())["results"]
    for name in ALTERNATIVES:
        r = results[name]
        assert r["headline"]["min_s"] <= r["headline"]["median_s"] <= r["headline"]["max_s"]
        assert r["peak_rss_mb"] > 0 and r["startup_s"] > 0
        assert [p["examples"] for p in r["n_sweep"]] == [10, 20]
        assert [p["epochs"] for p in r["e_sweep"]] == [1, 2]
        assert r["accuracy"] is None if name == "limit" else 0 <= r["accuracy"] <= 1


def test_device_side_workers_never_load_torch(smoke_run: Path) -> None:
    results = json.loads((smoke_run / "results.json").read_text())["results"]
    for name in ("edgeft", "limit", "vision-edgeft", "vision-limit"):
        assert not results[name]["torch_loaded"]
    assert results["pytorch"]["torch_loaded"] and results["vision-pytorch"]["torch_loaded"]


def test_vision_alternatives_train_the_same_head_to_the_same_accuracy(smoke_run: Path) -> None:
    # The same FP32 backbone, pixels, batches and head: they differ in when the backbone runs, not in what
    # is learned. One test image of the 10 may flip between torch's and ORT's float rounding.
    results = json.loads((smoke_run / "results.json").read_text())["results"]
    accuracies = [results[name]["accuracy"] for name in VISION[:3]]
    assert all(results[name]["test_examples"] == 10 for name in VISION[:3])
    assert max(accuracies) - min(accuracies) <= 0.1 + 1e-9, dict(zip(VISION, accuracies))
    assert min(accuracies) >= 0.3  # 10 classes: chance is 0.1 (measured: 0.5 after one epoch on 1 image per class)


def test_latency_and_sizes_cover_both_precisions(smoke_run: Path) -> None:
    run = json.loads((smoke_run / "results.json").read_text())
    latency = run["results"]["latency"]["latency"]
    for precision in ("int8", "fp32"):
        for case in ("single", "batch"):
            for path in ("edgeft", "bare-ort"):
                p = latency[f"{precision}/{case}/{path}"]
                assert p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"]
    bundles = run["sizes"]["bundles"]
    assert bundles["int8"] < bundles["fp32"]
    assert "torch" not in run["sizes"]["install"]["edgeft (device-only)"]["distributions"]
