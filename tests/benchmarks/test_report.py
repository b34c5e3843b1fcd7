"""The benchmark report places ExecuTorch's rows beside edgeft's and says where they win.

Built from a made-up run, so these run without ExecuTorch's environment; the
figures are chosen so that each claim can be checked by hand.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.speed.report import MIB, markdown, plots, rows
from benchmarks.speed.runners import ALTERNATIVES, EXECUTORCH, VISION_ALTERNATIVES


def result(seconds: float, rss: float, accuracy: float | None) -> dict:
    headline = {"examples": 8, "epochs": 2, "median_s": seconds, "min_s": seconds, "max_s": seconds, "runs_s": [seconds]}
    sweeps = {
        "n_sweep": [{"examples": 8, "epochs": 1, "median_s": seconds}],
        "e_sweep": [{"examples": 8, "epochs": 1, "median_s": seconds}],
    }
    return {
        "headline": headline,
        "startup_s": 0.5,
        "peak_rss_mb": rss,
        "torch_loaded": False,
        "accuracy": accuracy,
        "test_examples": 4,
        **sweeps,
    }


def made_up_run(executorch: dict) -> dict:
    results = {name: result(2.0, 300, 0.5) for name in (*ALTERNATIVES, *VISION_ALTERNATIVES)}
    results["edgeft"]["headline"]["backbone_pass_median_s"] = 1.0
    results["vision-edgeft"]["headline"]["backbone_pass_median_s"] = 1.0
    results["limit"]["accuracy"] = results["vision-limit"]["accuracy"] = None
    # Slower, but less memory and more accurate; no growth sweeps, as runners gives ExecuTorch's rows.
    results["executorch-int8-cached"] = {**result(4.0, 250, 0.75), "n_sweep": [], "e_sweep": []}
    # Timed on one step of 8, unscored; its headline (8 examples, 2 epochs: 2 steps) estimated at 50 s a step.
    results["executorch-textbook"] = {**result(50.0, 600, None), "n_sweep": [], "e_sweep": []}
    results["executorch-textbook"]["headline"]["estimate"] = {
        "examples": 8,
        "epochs": 2,
        "steps": 2,
        "per_step_s": 50.0,
        "median_s": 100.0,
    }
    rows = {"p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0}
    latency = {"batch_size": 4, "latency": {f"int8/single/{path}": rows for path in ("edgeft", "bare-ort")}}
    return {
        "results": {**results, "latency": {"alternative": "latency", **latency}},
        "sizes": {"bundles": {"int8": 22 * MIB}, "install": {}},
        "exports": {"bundle-int8": {"seconds": 30.0, "bytes": 22 * MIB}},
        "executorch": executorch,
    }


EXPORTED = {
    "exports": {
        "text-backbone-int8.pte": {"seconds": 60.0, "bytes": 20 * MIB},
        "text-head.pte": {"seconds": 5.0, "bytes": 1 * MIB},
        "vision-train-fp32.pte": {"error": "RuntimeError: no backward for this op\nmore lines", "trace": "..."},
    }
}


def test_executorch_rows_sit_between_the_alternatives_and_the_limit() -> None:
    run = made_up_run(EXPORTED)
    assert rows(run["results"], ALTERNATIVES, EXECUTORCH) == (
        "edgeft",
        "textbook-ort",
        "pytorch",
        "executorch-textbook",
        "executorch-int8-cached",
        "limit",
    )
    table = markdown(run)
    assert "| executorch-int8-cached | 4.00 s (4.00–4.00) | 2.00x |" in table
    assert table.index("| pytorch |") < table.index("| executorch-int8-cached |") < table.index("| limit |")
    assert (
        "Against ExecuTorch it personalizes 50.0x faster than executorch-textbook (est.), 2.0x faster than executorch-int8-cached (text)."
        in table
    )


def test_a_row_timed_on_one_step_shows_its_estimate_and_no_accuracy() -> None:
    table = markdown(made_up_run(EXPORTED))
    assert "| executorch-textbook | ≈ 100 s (est.: 2 steps of 50.0 s, one step timed) | ≈ 50x |" in table
    assert table.split("| executorch-textbook |")[1].splitlines()[0].endswith("| — |")


def test_programs_are_reported_beside_the_bundle_and_a_failed_export_with_its_error() -> None:
    table = markdown(made_up_run(EXPORTED))
    assert "(`bundle-int8`) | 30.0 s | 22.0 MiB |" in table
    assert "(`text-backbone-int8.pte`) | 60.0 s | 20.0 MiB |" in table
    assert "(`vision-train-fp32.pte`) | failed: RuntimeError: no backward for this op | — |" in table


def test_each_figure_executorch_wins_is_named() -> None:
    table = markdown(made_up_run(EXPORTED))
    wins = table[table.index("Where ExecuTorch wins a figure:") :]
    assert "- executorch-int8-cached beats edgeft on peak RSS: 250 MiB against 300 MiB" in wins
    assert "- executorch-int8-cached beats edgeft on held-out accuracy: 0.750 against 0.500" in wins
    assert "- text-backbone-int8.pte + text-head.pte beats bundle-int8 on size: 21.0 MiB against 22.0 MiB" in wins
    assert "wall time" not in wins and "export time" not in wins  # ExecuTorch was slower at both


def test_a_run_without_executorch_says_why() -> None:
    run = made_up_run({"skipped": "Could not build ExecuTorch's environment (pip ...):\nNo matching distribution"})
    del run["results"]["executorch-int8-cached"], run["results"]["executorch-textbook"]
    table = markdown(run)
    assert "ExecuTorch's rows are left out: Could not build ExecuTorch's environment (pip ...):" in table
    assert "executorch-" not in table and "- none in this run" in table


def test_plots_are_drawn_with_executorch_rows_that_have_no_growth_sweeps(tmp_path: Path) -> None:
    written = plots(made_up_run(EXPORTED)["results"], tmp_path)
    assert [p.name for p in written] == ["comparison.png", "growth_examples.png", "growth_epochs.png"]
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
