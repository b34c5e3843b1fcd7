"""A device-only environment: Python 3.13, edgeft's base install from its wheel, no torch, no ORT training.

Built once into ``.venv-device`` at the repository root and rebuilt when
pyproject.toml changes; each run reinstalls edgeft itself from a freshly built
wheel, so the suite always runs the code of this checkout as a user installs it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv-device"
STAMP = VENV / ".edgeft-device-stamp"
SUITE = REPO / "tests" / "device_only"
#: What the device suite needs beside the base install: a test runner, and the service's extra.
EXTRAS, TEST_TOOLS = "serve", ("pytest>=8",)
NO_PYTHON_313 = (
    "No Python 3.13 found for the device-only tests. Install one (`pyenv install 3.13`, or your system's python3.13 "
    "package) or set EDGEFT_PYTHON313 to its interpreter's path."
)


def find_python313() -> str:
    """The path of a working Python 3.13 interpreter.

    Looks at ``$EDGEFT_PYTHON313``, ``python3.13`` on the PATH, then pyenv's versions.

    Raises:
        RuntimeError: none was found; the message says how to get one.
    """
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [os.environ.get("EDGEFT_PYTHON313"), shutil.which("python3.13"),
                  *sorted(glob.glob(f"{pyenv_root}/versions/3.13*/bin/python3.13"), reverse=True)]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2] == (3, 13))"],
                               check=False, capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    raise RuntimeError(NO_PYTHON_313)


def build_wheel(out: Path) -> Path:
    """edgeft's wheel from this checkout (pip, as ``pip install .`` builds it), in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)])
    return next(out.glob("edgeft-*.whl"))


def ensure_venv(wheel: Path) -> Path:
    """The device-only venv with ``wheel`` installed; built from nothing when pyproject.toml changed."""
    python = find_python313()
    stamp = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + python.encode()).hexdigest()
    bin_dir = VENV / ("Scripts" if os.name == "nt" else "bin")
    if not STAMP.is_file() or STAMP.read_text() != stamp:
        shutil.rmtree(VENV, ignore_errors=True)
        _run([python, "-m", "venv", str(VENV)])
        _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", f"{wheel}[{EXTRAS}]", *TEST_TOOLS])
        STAMP.write_text(stamp)
    else:
        _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)])
    return bin_dir


def run_suite(bin_dir: Path, reference: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run tests/device_only with the venv's pytest, outside the checkout so that only the installed edgeft is importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["EDGEFT_DEVICE_REFERENCE"] = str(reference)
    command = [str(bin_dir / "pytest"), "-q", "-p", "no:cacheprovider", "-c", str(SUITE / "pytest.ini"),
               "--rootdir", str(SUITE), "--durations=5", str(SUITE)]
    return subprocess.run(command, cwd=cwd, env=env, check=False, capture_output=True, text=True)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
