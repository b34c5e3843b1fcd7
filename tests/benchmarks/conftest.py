"""The benchmark's smoke run, once per session, shared by the smoke tests.

It includes smoke mode's one ExecuTorch row where ExecuTorch's environment is
built (test_executorch_smoke.py checks it), and leaves it out otherwise: the
suite never builds that environment (about 8 minutes and 1.9 GB).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.executorch import env as executorch_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    flags = [] if executorch_env.python() is not None else ["--no-executorch"]
    command = [sys.executable, "-m", "benchmarks", "--mode", "smoke", *flags, "--out", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, timeout=900)  # ExecuTorch's two exports and its row add about 2 minutes
    return out
