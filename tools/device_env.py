"""Device-only environments: edgeft's base install from its wheel, under a chosen Python, nothing of the workstation.

The device test suite uses ``.venv-device`` (Python 3.13: plain onnxruntime, the
numpy engine); the flavour benchmark builds one per ONNX Runtime flavour. A venv
is built once and rebuilt when the base requirements (or the extras asked for)
change; each use reinstalls edgeft itself from a freshly built wheel, so what
runs is this checkout's code, installed as a user installs it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
NO_PYTHON = (
    "No Python {version} found for the device-only environment. Install one (`pyenv install {version}`, or your "
    "system's python{version} package) or set EDGEFT_PYTHON{digits} to its interpreter's path."
)


def find_python(version: str) -> str:
    """The path of a working CPython ``version`` ("3.13"): ``$EDGEFT_PYTHON313``, ``python3.13`` on PATH, then pyenv's.

    Raises:
        RuntimeError: none was found; the message says how to get one.
    """
    digits = version.replace(".", "")
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [
        os.environ.get(f"EDGEFT_PYTHON{digits}"),
        shutil.which(f"python{version}"),
        *sorted(glob.glob(f"{pyenv_root}/versions/{version}*/bin/python{version}"), reverse=True),
    ]
    wanted = tuple(int(part) for part in version.split("."))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", f"import sys, venv; print(sys.version_info[:2] == {wanted})"],
            check=False,
            capture_output=True,
            text=True,
            env=clean_env(),
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    raise RuntimeError(NO_PYTHON.format(version=version, digits=digits))


def build_wheel(out: Path) -> Path:
    """edgeft's wheel from this checkout (pip builds it as for ``pip install .``), in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)])
    return next(out.glob("edgeft-*.whl"))


def ensure_venv(venv: Path, python: str, wheel: Path, extras: tuple[str, ...] = (), tools: tuple[str, ...] = ()) -> Path:
    """``venv`` with ``wheel[extras]`` and ``tools`` installed; returns its bin folder.

    Args:
        venv: where the environment lives.
        python: the interpreter to build it with.
        wheel: edgeft's wheel (see :func:`build_wheel`).
        extras: edgeft extras to install beside the base install.
        tools: further requirements (a test runner).
    """
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {
        "python": python,
        "base": project["dependencies"],
        "tools": tools,
        "extras": {name: project["optional-dependencies"][name] for name in extras},
    }
    stamp_file, stamp = venv / ".edgeft-device-stamp", hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    if not stamp_file.is_file() or stamp_file.read_text() != stamp:
        shutil.rmtree(venv, ignore_errors=True)
        _run([python, "-m", "venv", str(venv)])
        target = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
        _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", target, *tools])
        stamp_file.write_text(stamp)
    else:
        _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)])
    return bin_dir


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point another interpreter at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, **extra}


def _run(command: list[str]) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=clean_env())
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
