"""Concurrent use of one state folder, with real processes: saves take turns, readers see a whole state."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from device_runtime import Personalizer

ROOT = Path(__file__).resolve().parents[2]
WRITER = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    from device_runtime import Personalizer
    p = Personalizer.load(sys.argv[1])
    texts = [f"text {i} about {t}" for i in range(3) for t in ("markets", "football")]
    for _ in range(int(sys.argv[3])):
        p.partial_fit(texts, [p.labels[i % 2] for i in range(len(texts))], epochs=1, accept="always")
        p.save(sys.argv[2])
    """
)
READER = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    from device_runtime import Personalizer
    for _ in range(int(sys.argv[2])):
        Personalizer.load(sys.argv[1])
    """
)


def _spawn(code: str, *args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stderr=subprocess.PIPE, text=True, env=env)


def _finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]


@pytest.fixture
def state(minilm_bundle: Path, tmp_path: Path) -> Path:
    Personalizer.load(minilm_bundle).save(tmp_path / "state")
    return tmp_path / "state"


def test_two_processes_saving_one_folder_both_succeed_and_leave_a_state_that_loads(minilm_bundle: Path, state: Path) -> None:
    writers = [_spawn(WRITER, minilm_bundle, state, 8) for _ in range(2)]
    for writer in writers:
        _finish(writer)
    assert Personalizer.load(state).current_version >= 1


def test_a_reader_beside_a_writer_always_loads_a_whole_state(minilm_bundle: Path, state: Path) -> None:
    writer, reader = _spawn(WRITER, minilm_bundle, state, 6), _spawn(READER, state, 4)
    _finish(reader)
    _finish(writer)


@pytest.mark.parametrize("module", ["device_runtime/state.py", "edgeft/registry/client.py"])
def test_state_and_registry_client_lock_without_posix_only_modules(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"fcntl", "msvcrt"}, "Windows has no fcntl (and POSIX no msvcrt): lock through filelock"
    assert "filelock" in imported
