"""The `edgeft` command line, run as a user would, on small CSV files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeft.cli import main
from edgeft.data import write_examples
from example_data import minilm_path


@pytest.fixture
def user_csv(tmp_path: Path, bbc_splits) -> Path:
    path = tmp_path / "user.csv"
    write_examples(path, *bbc_splits["user"])
    return path


@pytest.fixture
def test_csv(tmp_path: Path, bbc_splits) -> Path:
    path = tmp_path / "test.csv"
    texts, labels = bbc_splits["test"]
    write_examples(path, texts[::10], labels[::10])
    return path


def test_every_subcommand_has_help() -> None:
    for command in ["export", "inspect", "personalize", "predict", "evaluate"]:
        result = subprocess.run([sys.executable, "-m", "edgeft", command, "--help"], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert "usage: edgeft " + command in result.stdout


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["personalize", "b", "--data", "d", "--state", "s"], "edgeft personalize"),
        (["fleet", "simulate", "--bundle", "b", "--output", "o", "--data", "d"], "edgeft fleet simulate"),
    ],
)
def test_an_unknown_flag_is_reported_by_the_command_it_follows(argv: list[str], command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--bogus", "3"])
    assert f"{command}: error: unrecognized arguments: --bogus 3" in capsys.readouterr().err


def test_inspect_prints_the_manifest_as_a_table(minilm_bundle: Path, capsys) -> None:
    assert main(["inspect", str(minilm_bundle)]) == 0
    out = capsys.readouterr().out
    assert "minilm-bbc@1.0.0" in out
    assert "int8, 384 features" in out
    assert "file backbone.onnx" in out


def test_personalize_then_evaluate_and_predict_from_the_state(
    minilm_bundle: Path, user_csv: Path, test_csv: Path, tmp_path: Path, capsys
) -> None:
    state = tmp_path / "state"
    assert main(["personalize", str(minilm_bundle), "--data", str(user_csv), "--state", str(state), "--epochs", "5"]) == 0
    assert "head version 1; 60 examples" in capsys.readouterr().out

    assert main(["evaluate", str(state), "--data", str(test_csv), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 15 and report["accuracy"] > 0.5

    assert main(["predict", str(state), "--data", str(test_csv), "--proba"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 15
    assert rows[0]["label"] in rows[0]["proba"]


def test_missing_column_is_a_clear_error_with_exit_code_1(minilm_bundle: Path, user_csv: Path, tmp_path: Path, capsys) -> None:
    code = main(
        ["personalize", str(minilm_bundle), "--data", str(user_csv), "--state", str(tmp_path / "s"), "--label-column", "topic"]
    )
    assert code == 1
    assert "no column 'topic'" in capsys.readouterr().err


def test_a_file_that_is_not_utf8_is_a_clear_error_with_exit_code_1(minilm_bundle: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "latin1.csv"
    data.write_bytes("text\ncaf\u00e9 au lait\n".encode("latin-1"))
    assert main(["predict", str(minilm_bundle), "--data", str(data)]) == 1
    assert "is not UTF-8 text (byte 8 cannot be decoded); save it as UTF-8" in capsys.readouterr().err


def test_export_with_only_a_label_set_ships_an_untrained_head(tmp_path: Path, test_csv: Path, capsys) -> None:
    bundle = tmp_path / "bundle"
    labels = "business,entertainment,politics,sports,tech"
    assert main(["export", "--model", str(minilm_path()), "--output", str(bundle), "--labels", labels, "--quantize", "none"]) == 0
    assert "fp32 backbone, head untrained" in capsys.readouterr().out
    assert main(["predict", str(bundle), "--data", str(test_csv)]) == 1
    assert "call fit(X, y)" in capsys.readouterr().err


def test_an_image_bundle_personalizes_and_predicts_from_npz_arrays(effnet_bundle: Path, fashion, tmp_path: Path, capsys) -> None:
    images, labels = fashion["test"]
    np.savez(tmp_path / "user.npz", X=images, y=np.array(labels))
    np.savez(tmp_path / "new.npz", X=images[:4])
    state = tmp_path / "state"
    args = ["--data", str(tmp_path / "user.npz"), "--state", str(state), "--epochs", "5", "--accept", "always"]
    assert main(["personalize", str(effnet_bundle), *args]) == 0
    assert "head version 1; 30 examples" in capsys.readouterr().out

    assert main(["predict", str(state), "--data", str(tmp_path / "new.npz")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert all(r["label"] in labels for r in rows)
