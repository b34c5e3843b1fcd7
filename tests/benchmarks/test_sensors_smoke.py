"""The sensor benchmark's smoke mode runs end to end and writes its table and plot (no accuracy is asserted)."""

from __future__ import annotations

import json

from benchmarks.quality.sensors import METHODS, run


def test_smoke_writes_every_method_for_every_seed(tmp_path):
    run("smoke", tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    (row,) = results["data_sets"]["BasicMotions"]["rows"]
    assert all(0 <= row[m] <= 1 for m in METHODS) and row["user_examples"] == 20 and row["test_examples"] == 20
    table = (tmp_path / "results.md").read_text()
    assert all(f" {m} |" in table for m in METHODS)
    assert (tmp_path / "sensors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
