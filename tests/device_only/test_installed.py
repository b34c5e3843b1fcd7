"""What the base install under Python 3.13 is: plain onnxruntime, no torch, no ORT training; step graphs (or numpy) train."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import sysconfig
from pathlib import Path

import pytest

import edgeft
from device_runtime.doctor import diagnose
from device_runtime.engines import resolve_engine
from device_runtime.engines.base import EngineFallbackWarning
from edgeft.config import Engine
from edgeft.errors import ConfigError


def test_this_is_python_313_running_the_installed_edgeft_not_the_source_tree():
    assert sys.version_info[:2] == (3, 13)
    assert Path(edgeft.__file__).is_relative_to(sysconfig.get_paths()["purelib"])


def test_plain_onnxruntime_is_installed_and_nothing_of_the_workstation():
    assert importlib.metadata.version("onnxruntime")
    for absent in ("onnxruntime-training-cpu", "onnxruntime-training", "torch", "transformers", "optimum", "onnx"):
        with pytest.raises(importlib.metadata.PackageNotFoundError):
            importlib.metadata.version(absent)
    assert importlib.util.find_spec("torch") is None


def test_auto_chooses_numpy_with_one_sentence_saying_why():
    with pytest.warns(EngineFallbackWarning) as caught:
        assert resolve_engine("auto") is Engine.NUMPY
    message = str(caught[0].message)
    assert message.startswith("The installed onnxruntime ") and message.endswith("so the numpy engine trains the head.")
    assert "Error" not in message  # no internal ImportError text


def test_asking_for_the_ort_engine_names_the_fix():
    with pytest.raises(
        ConfigError, match=r'engine="ort" was requested, but the installed onnxruntime .* Use engine="step" or "numpy"'
    ):
        resolve_engine("ort")


def test_doctor_reports_plain_onnxruntime_and_the_step_engine():
    diagnosis = diagnose()
    assert diagnosis.onnxruntime == f"onnxruntime {importlib.metadata.version('onnxruntime')}"
    assert diagnosis.engine == "step" and "CPUExecutionProvider" in diagnosis.providers
    assert diagnosis.extras["serve"] == () and "torch" in diagnosis.extras["export"]
