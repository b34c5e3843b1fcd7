"""Which ONNX Runtime the base install brings, by platform and Python: read from pyproject.toml, checked on PyPI."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
ORT = {"onnxruntime", "onnxruntime-training-cpu"}
#: Where onnxruntime-training-cpu 1.19.2 (its last release) has wheels: CPython 3.10-3.12 on these (sys_platform, machine).
TRAINING_WHEELS = {("linux", "x86_64"), ("darwin", "x86_64"), ("darwin", "arm64"), ("win32", "AMD64")}


def base_requirements() -> list[Requirement]:
    return [Requirement(line) for line in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]


def ort_for(python: str, sys_platform: str, machine: str) -> list[str]:
    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": sys_platform,
        "platform_machine": machine,
        "extra": "",
    }
    return [r.name for r in base_requirements() if r.name in ORT and (r.marker is None or r.marker.evaluate(environment))]


def test_every_platform_gets_exactly_one_onnx_runtime_and_training_only_where_its_wheels_exist():
    platforms = [
        ("linux", "x86_64"),
        ("linux", "aarch64"),
        ("linux", "armv7l"),
        ("darwin", "x86_64"),
        ("darwin", "arm64"),
        ("win32", "AMD64"),
        ("win32", "ARM64"),
        ("win32", "x86"),
        ("freebsd", "amd64"),
        ("android", "aarch64"),
    ]
    for (sys_platform, machine), python in itertools.product(platforms, ("3.10", "3.11", "3.12", "3.13", "3.14", "3.15")):
        training = python in ("3.10", "3.11", "3.12") and (sys_platform, machine) in TRAINING_WHEELS
        expected = ["onnxruntime-training-cpu"] if training else ["onnxruntime"]
        assert ort_for(python, sys_platform, machine) == expected, (python, sys_platform, machine)


def test_requires_python_admits_current_cpython():
    from packaging.specifiers import SpecifierSet

    admitted = SpecifierSet(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"])
    assert all(version in admitted for version in ("3.10", "3.11", "3.12", "3.13", "3.14"))


def test_the_device_install_resolves_to_binary_wheels_on_every_target():
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "wheel_resolution.py"), "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    rows = {row["target"]: row for row in json.loads(result.stdout)}
    assert result.returncode == 0 and all(row["wheels"] for row in rows.values()), result.stdout
    ort_rows = {"Linux x86-64, CPython 3.11", "macOS arm64, CPython 3.11", "Windows x86-64, CPython 3.11"}
    assert {target for target, row in rows.items() if row["engine"] == "ort"} == ort_rows
    assert all(row["onnxruntime"].startswith("onnxruntime 1.") for target, row in rows.items() if target not in ort_rows)
    assert {"Linux aarch64, CPython 3.13", "macOS arm64, CPython 3.14", "Windows x86-64, CPython 3.13"} <= set(rows)
