"""The attack harness (tools/attack) runs and counts: a smoke test of one cheap category."""

from __future__ import annotations

import json
from pathlib import Path

from tools.attack.__main__ import main


def test_the_harness_counts_no_non_finite_head_written(minilm_bundle: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "bundles").mkdir()
    (tmp_path / "bundles" / "text").symlink_to(minilm_bundle)
    main(["--bundles", str(tmp_path / "bundles"), "--mode", "quick", "--only", "non-finite", "--out", str(tmp_path / "a.json")])
    (tally,) = json.loads((tmp_path / "a.json").read_text())
    assert tally["name"] == "non-finite heads" and tally["kinds"] >= 10 and tally["untyped"] == 0
    assert not [f for f in tally["failures"] if "was written" in f]
    assert "| non-finite heads |" in capsys.readouterr().out
