"""Concurrent use of one state folder, with real processes: saves take turns, none is lost, readers see a whole state."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from device_runtime import Personalizer
from edgeft.errors import StateConflictError

ROOT = Path(__file__).resolve().parents[2]
WRITER = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    from device_runtime import Personalizer
    from edgeft.errors import StateConflictError
    texts = [f"text {i} about {t}" for i in range(3) for t in ("markets", "football")]
    saved = 0
    for _ in range(int(sys.argv[2])):
        p = Personalizer.load(sys.argv[1])
        p.partial_fit(texts, [p.labels[i % 2] for i in range(len(texts))], epochs=1, accept="always")
        try:
            p.save(sys.argv[1])
            saved += 1
        except StateConflictError:
            pass
    print(saved)
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
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    return out


@pytest.fixture
def state(minilm_bundle: Path, tmp_path: Path) -> Path:
    Personalizer.load(minilm_bundle).save(tmp_path / "state")
    return tmp_path / "state"


def test_two_processes_saving_one_folder_lose_no_accepted_version(state: Path) -> None:
    writers = [_spawn(WRITER, state, 6) for _ in range(2)]
    saved = sum(int(_finish(writer)) for writer in writers)
    # Each save that went through was built on the one before it: the state holds one version per save.
    assert saved >= 1
    assert Personalizer.load(state).current_version == saved


def test_a_save_over_a_state_saved_by_another_since_loading_is_refused(state: Path) -> None:
    first, second = Personalizer.load(state), Personalizer.load(state)
    texts = [f"text {i} about {t}" for i in range(3) for t in ("markets", "football")]
    for p in (first, second):
        p.partial_fit(texts, [p.labels[i % 2] for i in range(len(texts))], epochs=1, accept="always")
    first.save(state)
    first.save(state)  # its own save is what it expects to find
    with pytest.raises(StateConflictError, match="another process"):
        second.save(state)
    assert Personalizer.load(state).current_version == first.current_version


def test_a_reader_beside_a_writer_always_loads_a_whole_state(state: Path) -> None:
    writer, reader = _spawn(WRITER, state, 6), _spawn(READER, state, 4)
    _finish(reader)
    _finish(writer)


@pytest.mark.parametrize("module", ["device_runtime/state.py", "edgeft/registry/client.py"])
def test_state_and_registry_client_lock_without_posix_only_modules(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"fcntl", "msvcrt"}, "Windows has no fcntl (and POSIX no msvcrt): lock through filelock"
    assert "filelock" in imported


def test_a_save_from_the_bundle_over_a_state_with_versions_is_refused(minilm_bundle: Path, state: Path) -> None:
    texts = [f"text {i} about {t}" for i in range(3) for t in ("markets", "football")]
    kept = Personalizer.load(state)
    kept.partial_fit(texts, [kept.labels[i % 2] for i in range(len(texts))], epochs=1, accept="always")
    kept.save(state)
    fresh = Personalizer.load(minilm_bundle)  # a run that forgot --continue
    fresh.partial_fit(texts, [fresh.labels[i % 2] for i in range(len(texts))], epochs=1, accept="always")
    with pytest.raises(StateConflictError, match=r"holds head version\(s\) 1 that this personalizer never loaded"):
        fresh.save(state)
    assert Personalizer.load(state).current_version == 1


def test_a_save_that_changed_no_version_does_not_stop_another_from_saving_its_own(state: Path) -> None:
    served, job = Personalizer.load(state), Personalizer.load(state)
    served.predict(["a text about markets"])
    served.save(state)  # the service persists its drift window: no new version
    texts = [f"text {i} about {t}" for i in range(3) for t in ("markets", "football")]
    job.partial_fit(texts, [job.labels[i % 2] for i in range(len(texts))], epochs=1, accept="always")
    job.save(state)
    assert Personalizer.load(state).current_version == 1
