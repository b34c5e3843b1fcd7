"""The step-graph benchmark's report: each bundle's row puts the two engines side by side as ratios."""

from __future__ import annotations

import numpy as np

from benchmarks.runtime.step_graphs import EngineRun, compare, table


def test_a_row_gives_time_and_memory_ratios_and_how_far_apart_the_engines_ended():
    params = {"head.weight": np.zeros((2, 3), np.float32)}
    ort = EngineRun("ort", step_ms=10.0, peak_rss_mb=200.0, losses=[1.0, 0.9])
    step = EngineRun("step", step_ms=15.0, peak_rss_mb=150.0, losses=[1.0, 0.9001])
    row = compare("head", {"ort": (ort, params), "step": (step, {"head.weight": params["head.weight"] + 1e-3})})
    assert (row["time_ratio"], row["memory_ratio"]) == (1.5, 0.75)
    assert np.isclose(row["max_loss_diff"], 1e-4) and np.isclose(row["max_param_diff"], 1e-3)
    assert "| head | 10.0 | 15.0 | 1.50 | 200 | 150 | 0.75 | 1.0e-04 | 1.0e-03 |" in table([row], "quick", "a machine")
