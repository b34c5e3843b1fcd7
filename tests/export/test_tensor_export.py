"""Exporting float-tensor bundles, on real sensor data (BasicMotions), through the CLI and the API.

``cnn1d`` is trained on the server data with the fine-tuning controls; a given ONNX file ships with the
server's per-channel statistics; a CSV of number columns is a table of rows; what cannot work is refused
before any slow work.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft.cli import main
from edgeft.config import ExportConfig, TensorPreprocessing
from edgeft.errors import ConfigError, ExportError
from edgeft.layout import BACKBONE
from export import BackboneOptions, FineTuning, ServerData, export_bundle

SHORT = ["--finetune", "--ft-epochs", "10", "--ft-lr", "0.003", "--quantize", "none"]  # the fine-tuning controls apply


def test_cli_exports_cnn1d_from_npz_then_inspects_predicts_personalizes_and_evaluates(basic_motions, tmp_path, capsys):
    X, labels = basic_motions["server"]
    X_user, y_user = basic_motions["user"]
    np.savez(tmp_path / "server.npz", X=X, y=np.array(labels))
    np.savez(tmp_path / "user.npz", X=X_user[:, [1, 0, 2, 4, 3, 5]], y=np.array(y_user))
    np.save(tmp_path / "new.npy", X_user[:3])
    bundle, state = str(tmp_path / "b"), str(tmp_path / "state")

    assert main(["export", "--model", "cnn1d", "--train-data", str(tmp_path / "server.npz"), "--output", bundle, *SHORT]) == 0
    assert "finetune_epochs_run" in json.loads((tmp_path / "b" / "manifest.json").read_text())["metrics"]
    assert main(["inspect", bundle]) == 0
    out = capsys.readouterr().out
    assert "float tensor, windows of 6 channels x 100 steps (other lengths: crop_or_pad)" in out
    assert "tensor-classification" in out and "cnn1d (" in out

    assert main(["predict", bundle, "--data", str(tmp_path / "new.npy")]) == 0
    assert [json.loads(line)["index"] for line in capsys.readouterr().out.splitlines()] == [0, 1, 2]
    assert main(["personalize", bundle, "--data", str(tmp_path / "user.npz"), "--state", state]) == 0
    assert "40 examples" in capsys.readouterr().out  # accepted or refused by the replay guard: the CLI says which
    assert main(["evaluate", state, "--data", str(tmp_path / "user.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == sorted(set(labels))


def _write_rows(path: Path, X: np.ndarray, labels: list[str]) -> None:
    """Per-channel summary statistics of each window as one CSV row: a table of 24 number columns and a label."""
    rows = np.concatenate([X.mean(2), X.std(2), X.min(2), X.max(2)], axis=1)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(f"f{i}" for i in range(rows.shape[1])), "label"])
        writer.writerows([*map(float, row), label] for row, label in zip(rows, labels))


def test_cli_exports_and_evaluates_tabular_rows_from_csv(basic_motions, tmp_path, capsys):
    _write_rows(tmp_path / "server.csv", *basic_motions["server"])
    _write_rows(tmp_path / "user.csv", *basic_motions["user"])
    bundle = str(tmp_path / "rows")
    assert main(["export", "--model", "cnn1d", "--train-data", str(tmp_path / "server.csv"), "--output", bundle, *SHORT]) == 0
    assert main(["inspect", bundle]) == 0
    assert "float tensor, rows of 24 features" in capsys.readouterr().out
    assert main(["evaluate", bundle, "--data", str(tmp_path / "user.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 0.75


def test_an_onnx_backbone_file_ships_with_the_server_statistics(sensor_bundle, basic_motions, tmp_path):
    X, labels = basic_motions["server"]
    options = BackboneOptions(feature_output="features", tensor=TensorPreprocessing(length_policy="exact"))
    manifest = export_bundle(str(sensor_bundle / BACKBONE), tmp_path / "b", data=ServerData(X * 2.0, labels), backbone=options)
    assert manifest.input.length_policy == "exact" and manifest.base_model["source"].endswith(BACKBONE)
    np.testing.assert_allclose(manifest.input.channel_std, 2 * X.std(axis=(0, 2)), rtol=1e-6)
    assert Personalizer.from_bundle(tmp_path / "b").score(X * 2.0, labels) >= 0.9


def test_what_cannot_work_is_refused_before_any_slow_work(sensor_bundle, tmp_path):
    with pytest.raises(ExportError, match="cnn1d is trained on the server data: give labelled examples"):
        export_bundle("cnn1d", tmp_path / "a", data=ServerData(label_set=["a", "b"]))
    onnx_file = str(sensor_bundle / BACKBONE)
    with pytest.raises(ConfigError, match="needs a torch module or cnn1d, not an ONNX file"):
        export_bundle(onnx_file, tmp_path / "b", backbone=BackboneOptions(tensor=TensorPreprocessing()), fine_tuning=FineTuning())
    cut = ExportConfig(device_trainable_blocks=1)
    with pytest.raises(ExportError, match="cuts a tensor backbone between the stages of an nn.Sequential"):
        export_bundle(
            onnx_file,
            tmp_path / "c",
            backbone=BackboneOptions(feature_output="features", tensor=TensorPreprocessing()),
            config=cut,
        )
    with pytest.raises(ExportError, match="between 1 and 2"):  # cnn1d's three conv stages
        export_bundle(
            "cnn1d",
            tmp_path / "d",
            data=ServerData(np.zeros((4, 6, 100)), list("abab")),
            config=ExportConfig(device_trainable_blocks=3),
        )
    assert not any((tmp_path / name).exists() for name in "abcd")
    with pytest.raises(ConfigError, match=r"shape must be \(channels, steps\) or \(features,\)"):
        TensorPreprocessing(shape=(2, 3, 4))
