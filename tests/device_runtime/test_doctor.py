"""``edgeft doctor``: what a bug report needs, read from this (workstation, ORT training) environment."""

from __future__ import annotations

import json
import platform
import re

from device_runtime.doctor import diagnose, extras_status
from edgeft.cli import main


def test_the_report_names_python_platform_onnx_runtime_providers_and_engine(capsys):
    assert main(["doctor"]) == 0
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert lines["python"].startswith(f"{platform.python_version()} (CPython)")
    assert platform.machine() in lines["platform"]
    assert lines["onnxruntime"] == "onnxruntime-training-cpu 1.19.2"
    assert "CPUExecutionProvider" in lines["providers"]
    assert lines["training engine"] == "ort: ONNX Runtime training"


def test_json_has_the_same_facts(capsys):
    assert main(["doctor", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts == json.loads(json.dumps(diagnose().to_dict()))
    assert facts["engine"] == "ort" and facts["engine_reason"] == ""


def test_extras_list_what_they_lack_and_every_extra_of_this_setup_is_complete():
    status = extras_status()
    assert {"export", "serve", "data", "test"} <= set(status)
    assert all(lacks == () for name, lacks in status.items() if name in ("export", "serve", "data", "test"))
