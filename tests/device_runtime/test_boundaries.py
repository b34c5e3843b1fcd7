"""Typed errors at the device's boundaries: each case here was once a raw exception or a silent acceptance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft.cli import main
from edgeft.config import RuntimeConfig
from edgeft.data import read_examples
from edgeft.errors import ConfigError, DataError, ExportError, StateError


@pytest.fixture
def saved(make_personalizer, user, tmp_path) -> Path:
    make_personalizer().fit(*user, epochs=2).save(tmp_path / "state")
    return tmp_path / "state"


def test_a_lone_surrogate_in_a_text_is_a_data_error(make_personalizer) -> None:
    with pytest.raises(DataError, match=r"X\[1\] holds '\\ud800' at position 0, a lone surrogate"):
        make_personalizer().predict(["fine", "\ud800 x"])


def test_export_inference_model_to_a_folder_is_an_export_error(make_personalizer, tmp_path) -> None:
    with pytest.raises(ExportError, match="is a folder; give the path of the .onnx file"):
        make_personalizer().export_inference_model(tmp_path)


def test_export_inference_model_under_a_file_is_an_export_error(make_personalizer, tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="Could not write the model to .*nothing was written there"):
        make_personalizer().export_inference_model(tmp_path / "file" / "model.onnx")


@pytest.mark.parametrize("cache_dir", ["file", 5], ids=["a file", "an int"])
def test_a_cache_dir_that_is_no_folder_is_a_config_error(tmp_path, cache_dir) -> None:
    (tmp_path / "file").write_text("x")
    value = str(tmp_path / cache_dir) if isinstance(cache_dir, str) else cache_dir
    with pytest.raises(ConfigError, match="cache_dir"):
        RuntimeConfig(cache_dir=value)


def test_a_config_of_the_wrong_type_is_a_config_error(minilm_bundle) -> None:
    with pytest.raises(ConfigError, match="config must be a TrainConfig or None, got str"):
        Personalizer.load(minilm_bundle, config="x")


@pytest.mark.parametrize("threshold", [-1, float("nan"), 0, "0.5"])
def test_a_drift_threshold_that_is_no_positive_number_is_a_config_error(make_personalizer, threshold) -> None:
    with pytest.raises(ConfigError, match="threshold must be a finite number > 0"):
        make_personalizer().drift_report(threshold)


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_rollback_to_a_version_that_is_no_integer_is_a_state_error(make_personalizer, user, version) -> None:
    personalizer = make_personalizer().fit(*user, epochs=2)
    with pytest.raises(StateError, match="A head version is an integer"):
        personalizer.rollback(version)
    assert personalizer.current_version == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(engine="bogus"), r"engine: Input should be 'ort', 'numpy' or 'step', got 'bogus'"),
        (lambda r: r.update(history="x"), r"history: Input should be a valid array, got 'x'"),
        (lambda r: r["versions"][1].update(metrics=None), r"versions.1.metrics: Input should be an object, got None"),
        (lambda r: r.update(seen=None), r"seen: Input should be an object, got None"),
        (lambda r: r["versions"][1].update(file="../../etc/passwd"), r"versions.1.file: String should match pattern"),
    ],
    ids=["unknown engine", "history a string", "metrics null", "seen null", "a file outside the folder"],
)
def test_a_malformed_state_field_is_a_state_error_naming_it(saved: Path, change, message: str) -> None:
    record = json.loads((saved / "state.json").read_text())
    change(record)
    (saved / "state.json").write_text(json.dumps(record))
    with pytest.raises(StateError, match=message):
        Personalizer.load(saved)


def test_rollback_on_the_command_line_refuses_a_bundle_folder(bundle_copy: Path, capsys) -> None:
    assert main(["rollback", str(bundle_copy), "--to", "0"]) == 1
    assert "holds no saved state (state.json); rollback works on a state folder" in capsys.readouterr().err
    assert not (bundle_copy / "state.json").exists()


def test_saving_a_state_into_a_bundle_folder_is_a_state_error(bundle_copy: Path) -> None:
    personalizer = Personalizer.from_bundle(bundle_copy)
    with pytest.raises(StateError, match="is a bundle folder"):
        personalizer.save(bundle_copy)
    assert not (bundle_copy / "state.json").exists()


def test_a_garbage_npz_is_a_data_error(tmp_path) -> None:
    (tmp_path / "data.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="is not a readable .npz file"):
        read_examples(tmp_path / "data.npz")


def test_an_npz_holding_pickled_objects_is_a_data_error(tmp_path) -> None:
    np.savez(tmp_path / "data.npz", X=np.array([{"a": 1}], dtype=object), y=np.array(["x"]))
    with pytest.raises(DataError, match="is not a readable .npz file"):
        read_examples(tmp_path / "data.npz")


def test_a_cache_dir_that_is_a_file_on_the_command_line_is_an_error_message(minilm_bundle, tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "data.csv").write_text("text,label\nhello,tech\n")
    code = main(
        [
            "personalize",
            str(minilm_bundle),
            "--data",
            str(tmp_path / "data.csv"),
            "--state",
            str(tmp_path / "s"),
            "--cache-dir",
            str(tmp_path / "file"),
        ]
    )
    assert code == 1
    assert "error: cache_dir" in capsys.readouterr().err


def test_a_labelled_table_of_numbers_reads_without_its_labels_for_predict(tmp_path) -> None:
    (tmp_path / "rows.csv").write_text("f0,f1,f2,label\n1,2,3,walk\n4,5,6,run\n")
    X, labels = read_examples(tmp_path / "rows.csv", label_column=None)
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])
    assert labels is None


def test_a_missing_column_error_lists_the_files_columns_in_order_and_not_all_of_them(tmp_path) -> None:
    (tmp_path / "wide.csv").write_text(",".join(f"c{i}" for i in range(30)) + "\n" + ",".join(["x"] * 30) + "\n")
    with pytest.raises(DataError, match=r"columns are 'c0', 'c1', .*'c9', \.\.\. \(30 in all\)"):
        read_examples(tmp_path / "wide.csv")
