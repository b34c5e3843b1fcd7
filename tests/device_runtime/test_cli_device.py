"""The CLI's device commands: personalize with every control, rollback, drift."""

from __future__ import annotations

import json
import re

from device_runtime import Personalizer
from edgeft.cli import main
from edgeft.data import write_examples


def test_personalize_rollback_and_drift_from_the_command_line(minilm_bundle, user, tmp_path, feature_cache_dir, capsys):
    data, state = tmp_path / "user.csv", tmp_path / "state"
    write_examples(data, *user)
    common = ["--data", str(data), "--state", str(state), "--cache-dir", str(feature_cache_dir)]
    assert (
        main(
            [
                "personalize",
                str(minilm_bundle),
                *common,
                "--epochs",
                "20",
                "--patience",
                "3",
                "--metric",
                "accuracy",
                "--validation-fraction",
                "0.25",
                "--balanced-sampling",
                "--weight-decay",
                "0.05",
                "--max-seconds",
                "60",
                "--engine",
                "numpy",
                "--providers",
                "cuda,cpu",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("accepted: the new head is better") and "head version 1" in out and "numpy/CPUExecutionProvider" in out
    assert re.search(r"business on \d+ guard rows? \d\.\d\d -> \d\.\d\d kept", out), "each label's line says on how many rows"
    assert main(["personalize", str(state), *common, "--continue", "--epochs", "2", "--accept", "always"]) == 0
    assert Personalizer.load(state).current_version == 2
    assert main(["rollback", str(state), "--to", "1"]) == 0
    assert "head version 1 is current; versions: 0, 1, 2" in capsys.readouterr().out
    assert Personalizer.load(state).current_version == 1
    assert main(["drift", str(state), "--threshold", "0.9"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["threshold"] == 0.9 and report["examples_seen"] > 0


def test_bad_values_are_reported_as_errors_not_tracebacks(minilm_bundle, user, tmp_path, capsys):
    data = tmp_path / "user.csv"
    write_examples(data, *user)
    assert main(["personalize", str(minilm_bundle), "--data", str(data), "--state", str(tmp_path / "s"), "--patience", "0"]) == 1
    assert "patience must be a positive integer" in capsys.readouterr().err
    assert main(["rollback", str(tmp_path / "nothing"), "--to", "1"]) == 1
