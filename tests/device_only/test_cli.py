"""The CLI's device commands under Python 3.13, run as a user runs them: the installed ``edgeft`` script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgeft.data import write_examples

EDGEFT = str(Path(sys.executable).with_name("edgeft"))


def edgeft(*args: str) -> str:
    result = subprocess.run([EDGEFT, *args], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_doctor_says_what_a_bug_report_needs():
    rows = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in edgeft("doctor").splitlines() if "  " in line}
    assert rows["python"].startswith("3.13") and rows["onnxruntime"].startswith("onnxruntime 1.")
    assert rows["training engine"].startswith("step: the installed onnxruntime")
    assert rows["exporting"].startswith("needs ONNX Runtime training")
    assert json.loads(edgeft("doctor", "--json"))["engine"] == "step"


def test_personalize_predict_evaluate_and_rollback(minilm_bundle, reference, tmp_path):
    data, state = tmp_path / "user.csv", tmp_path / "state"
    write_examples(data, reference["user_texts"], reference["user_labels"])
    out = edgeft(
        "personalize", str(minilm_bundle), "--data", str(data), "--state", str(state), "--epochs", "5", "--accept", "always"
    )
    assert "head version 1" in out and "on step/CPUExecutionProvider" in out
    rows = [json.loads(line) for line in edgeft("predict", str(state), "--data", str(data), "--proba").splitlines()]
    assert len(rows) == len(reference["user_texts"]) and set(rows[0]["proba"]) == set(reference["user_labels"])
    assert json.loads(edgeft("evaluate", str(state), "--data", str(data), "--json"))["n"] == len(reference["user_texts"])
    assert "head version 0 is current" in edgeft("rollback", str(state), "--to", "0")
