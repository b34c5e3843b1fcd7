"""ExecuTorch's path through the benchmark, with the least work: smoke mode's one ExecuTorch row.

That row (``config.MODES["smoke"].executorch``) exports an XNNPACK backbone and
a head training program in ExecuTorch's environment, then personalizes with
them in a worker of its own, beside edgeft. The environment takes about 8
minutes to build, so these tests skip, saying so, until it is built.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.executorch import env as executorch_env
from benchmarks.executorch.export import NEEDS
from benchmarks.speed.config import MODES

pytestmark = pytest.mark.skipif(
    executorch_env.python() is None,
    reason=(
        f"ExecuTorch's environment is not built at {executorch_env.venv_folder()}: the suite never builds it "
        "(about 8 minutes, 1.9 GB); `.venv/bin/python -m benchmarks.executorch.env` or `make bench` does, and then these tests run"
    ),
)
(ROW,) = MODES["smoke"].executorch


def test_smoke_mode_exports_the_programs_its_executorch_row_runs(smoke_run: Path) -> None:
    exports = json.loads((smoke_run / "results.json").read_text())["executorch"]["exports"]
    assert set(exports) == set(NEEDS[ROW])
    for name in NEEDS[ROW]:
        assert (
            exports[name]["seconds"] > 0 and exports[name]["bytes"] == (smoke_run / "cache" / "executorch" / name).stat().st_size
        )


def test_the_executorch_row_personalizes_and_is_scored_on_the_held_out_split(smoke_run: Path) -> None:
    run = json.loads((smoke_run / "results.json").read_text())
    r, edgeft = run["results"][ROW], run["results"]["vision-edgeft"]
    assert r["headline"]["examples"] == edgeft["headline"]["examples"] and r["headline"]["epochs"] == edgeft["headline"]["epochs"]
    assert r["headline"]["min_s"] <= r["headline"]["median_s"] <= r["headline"]["max_s"]
    assert r["peak_rss_mb"] > 0 and r["torch_loaded"]  # ExecuTorch's Python runtime imports torch
    assert 0 <= r["accuracy"] <= 1 and r["test_examples"] == edgeft["test_examples"]


def test_the_report_sets_the_executorch_row_and_its_programs_beside_edgeft(smoke_run: Path) -> None:
    table = (smoke_run / "results.md").read_text()
    assert f"| {ROW} | " in table and "Against ExecuTorch it personalizes" in table
    for name in NEEDS[ROW]:
        assert f"(`{name}`) | " in table
