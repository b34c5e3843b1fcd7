"""State that stays small: a save writes only what changed, and retention bounds the versions kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from device_runtime.versions import KEEP_VERSIONS, VersionHistory
from edgeft.errors import StateError


def _history(n: int, keep_last: int = 3, pinned: tuple[int, ...] = ()) -> VersionHistory:
    history = VersionHistory({"w": np.zeros(2)}, "2026-01-01", keep_last=keep_last)
    for i in range(1, n + 1):
        history.add({"w": np.full(2, i)}, {})
        if i in pinned:
            history.pin(i)
    return history


def test_retention_keeps_the_shipped_head_and_the_last_n() -> None:
    assert [v.version for v in _history(8).versions] == [0, 6, 7, 8]


def test_retention_keeps_pinned_versions() -> None:
    assert [v.version for v in _history(8, pinned=(2,)).versions] == [0, 2, 6, 7, 8]


def test_retention_keeps_the_current_version_of_a_state_rolled_back() -> None:
    history = VersionHistory({"w": np.zeros(2)}, "2026-01-01", keep_last=2)
    entries = [
        {"version": i, "metrics": {}, "created": "2026-01-02", "file": f"v{i}.npz", "sha256": "0" * 64} for i in range(1, 6)
    ]
    history.restore(entries, {i: {"w": np.full(2, i)} for i in range(1, 6)}, current=1, pinned=[])
    assert [v.version for v in history.versions] == [0, 1, 4, 5]
    assert history.current == 1


def test_the_default_keeps_ten_versions() -> None:
    assert KEEP_VERSIONS == 10
    assert len(_history(30, keep_last=KEEP_VERSIONS).versions) == 11


def test_a_dropped_version_cannot_be_rolled_back_to() -> None:
    with pytest.raises(StateError, match="There is no head version 1"):
        _history(8).get(1)


def _fit_twice(make_personalizer, user, folder: Path, **runtime) -> Personalizer:
    personalizer = make_personalizer(**runtime)
    for epochs in (1, 2):
        personalizer.fit(*user, epochs=epochs, accept="always").save(folder)
    return personalizer


def test_a_save_rewrites_no_version_saved_before(make_personalizer, user, tmp_path) -> None:
    personalizer = make_personalizer().fit(*user, epochs=1, accept="always")
    personalizer.save(tmp_path / "state")
    first = next((tmp_path / "state").glob("v1-*.npz"))
    written = first.stat().st_mtime_ns, first.stat().st_ino
    personalizer.fit(*user, epochs=2, accept="always").save(tmp_path / "state")
    assert (first.stat().st_mtime_ns, first.stat().st_ino) == written
    assert len(list((tmp_path / "state").glob("v2-*.npz"))) == 1


def test_retention_bounds_the_files_of_a_saved_state(make_personalizer, user, tmp_path) -> None:
    personalizer = _fit_twice(make_personalizer, user, tmp_path / "state", keep_versions=1)
    record = json.loads((tmp_path / "state" / "state.json").read_text())
    assert [v["version"] for v in record["versions"]] == [0, 2]
    assert [p.name.split("-")[0] for p in (tmp_path / "state").glob("v*.npz")] == ["v2"]
    assert personalizer.current_version == 2


def test_pinned_versions_survive_save_and_load(make_personalizer, user, tmp_path) -> None:
    personalizer = make_personalizer(keep_versions=1).fit(*user, epochs=1, accept="always").pin(1)
    personalizer.fit(*user, epochs=2, accept="always").save(tmp_path / "state")
    restored = Personalizer.load(tmp_path / "state")
    assert [v["version"] for v in restored.versions] == [0, 1, 2]
    saved, kept = restored.rollback(1).head_parameters(), personalizer.rollback(1).head_parameters()
    assert saved.keys() == kept.keys() and all(np.array_equal(saved[k], kept[k]) for k in saved)
