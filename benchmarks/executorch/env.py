"""ExecuTorch's own environment, built on demand: ``python -m benchmarks.executorch.env``.

The product's environments and CI never carry ExecuTorch: the benchmarks build
a separate venv from ``requirements.txt`` beside this file (with the repository's
constraints) the first time they need it. It lives outside the checkout, keyed
by a hash of both files, so fresh clones on one machine share it and a changed
pin builds a new one. ``EDGEFT_EXECUTORCH_VENV`` names another folder. The
checkout is not installed into it: its workers run from the repository root.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import ROOT

REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
CONSTRAINTS = ROOT / "constraints.txt"
STAMP = ".installed"


def venv_folder() -> Path:
    """Where the environment is (or will be)."""
    if override := os.environ.get("EDGEFT_EXECUTORCH_VENV"):
        return Path(override)
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()[:10]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "edgeft" / f"venv-executorch-{digest}"


def python() -> Path | None:
    """The environment's interpreter, or None while it is not built."""
    folder = venv_folder()
    return folder / "bin" / "python" if (folder / STAMP).is_file() else None


def build(log=print) -> Path:
    """Build the environment unless it is there; returns its interpreter.

    Raises:
        RuntimeError: venv or pip failed (no network, no wheel for this Python); pip's last lines are in the message.
    """
    if (existing := python()) is not None:
        return existing
    folder = venv_folder()
    started = time.perf_counter()
    log(f"Building ExecuTorch's environment in {folder} (once per machine) ...")
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(folder)],
        [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), "-r", str(REQUIREMENTS)],
    ]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # a failure is raised below
        if done.returncode != 0:
            raise RuntimeError(f"Could not build ExecuTorch's environment ({' '.join(command[:4])} ...):\n{done.stderr[-2000:]}")
    (folder / STAMP).write_text(f"{time.perf_counter() - started:.0f} s\n")
    log(f"  built in {time.perf_counter() - started:.0f} s")
    return folder / "bin" / "python"


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(
        description="Build ExecuTorch's environment (about 8 minutes, 1.9 GB); print its python."
    ).parse_args()
    print(build())
