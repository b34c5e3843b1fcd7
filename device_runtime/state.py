"""A personalized head on disk: crash-safe, versioned, tied to the bundle it came from.

Layout::

    state.json                 which bundle, versions with metrics, current version, config, report
    v<N>-<sha256[:16]>.npz     parameters of accepted head version N (version 0 is the bundle's own)
    opt-<sha256[:16]>.ckpt     the current head with AdamW's moments (.npz for the numpy engine)

A save writes every new file under a new, content-derived name first (each
via temp file, fsync and rename) and replaces ``state.json`` last. A crash at
any moment leaves either the old or the new ``state.json``, and every file it
names is still there: files no longer named are removed only afterwards.

A save checks what it is about to write before ``state.json`` is replaced: every
head finite, and the new ``state.json`` read back through its schema. A state
that could not be loaded again is never written; the one saved before stays.

Concurrent use: saves and loads of one folder take its lock (``.state.lock``, a
``filelock`` lock: Linux, macOS and Windows), so two processes or threads saving
the same folder take turns, and a reader beside a writer sees the whole state
before or after a save, never a mix. A save names the head versions its
personalizer has seen (loaded or saved itself, ``seen``): a save that would drop
a version saved there by someone else (another process, or an earlier run the
personalizer did not load) is refused rather than made silently.

A save writes only what changed: a version already in the folder's
``state.json`` with the same sha256 keeps its file, so a save costs one new
version file, the optimizer state and the small index, however many versions
came before. The retention policy of :class:`~device_runtime.versions.VersionHistory`
bounds how many versions there are. ``state.json``'s schema lives in
:mod:`device_runtime.state_schema`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from device_runtime.engines import HeadEngine
from device_runtime.state_schema import STATE_FORMAT_VERSION, parse_record
from device_runtime.versions import HeadVersion, VersionHistory
from edgeft import atomic
from edgeft.bundle import NPZ_ERRORS, Bundle, file_sha256
from edgeft.errors import StateConflictError, StateError
from edgeft.layout import MANIFEST

STATE_FILE = "state.json"
LOCK_FILE = ".state.lock"
LOCK_TIMEOUT_S = 300.0  # a save of a large state takes seconds; waiting longer means the holder is stuck
Version = tuple[int, Any]  # (version number, sha256 of its file; None for the bundle's own head)


@contextlib.contextmanager
def state_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of the state folder ``folder``: saves and loads of it take turns, across processes.

    Where there is no such folder, or the lock file cannot be created there (a read-only folder, where no
    save can happen either), the block runs without it.

    Raises:
        StateError: another process held the lock for more than ``LOCK_TIMEOUT_S`` seconds.
    """
    lock: FileLock | None = FileLock(Path(folder) / LOCK_FILE, timeout=LOCK_TIMEOUT_S) if Path(folder).is_dir() else None
    try:
        if lock is not None:
            lock.acquire()
    except Timeout as e:
        raise StateError(
            f"The state in {folder} stayed locked by another process for {LOCK_TIMEOUT_S:.0f} s; "
            f"if no process is saving it, delete {LOCK_FILE} there and try again."
        ) from e
    except OSError:
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def save_state(
    folder: str | os.PathLike,
    engine: HeadEngine,
    history: VersionHistory,
    bundle: Bundle,
    record: dict[str, Any],
    seen: frozenset[Version] = frozenset(),
) -> frozenset[Version]:
    """Write the versions, the engine's current head and optimizer state, and ``record`` into ``folder``.

    Args:
        seen: the (version, sha256) of every head version the saving personalizer has loaded or saved: a
            version in ``folder`` outside it (and past the bundle's own, version 0) would be lost, so the save
            is refused.

    Returns:
        The (version, sha256) of the versions written: what the next save has seen.

    Raises:
        StateError: the state could not be written (e.g. disk full), or (StateConflictError) ``folder`` holds
            versions this personalizer never saw; whatever was saved in ``folder`` before is unchanged.
    """
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        raise StateError(
            f"{folder} is a bundle folder ({MANIFEST}); a state saved there would mix with the bundle. "
            "Save the state to a folder of its own."
        )
    if folder.exists() and not folder.is_dir():
        raise StateError(f"Could not save the state to {folder}: it is a file, not a folder. Choose a folder.")
    _check_finite(folder, history, engine)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:  # ValueError: a path no file system takes (a NUL character)
        raise StateError(f"Could not save the state to {folder!r} ({_reason(e)}).") from e
    with state_lock(folder):
        saved = _saved_record(folder)  # read once: what this save would replace
        _refuse_another_bundles_state(folder, saved, bundle)
        _refuse_unseen(folder, saved, seen)
        return _save_locked(folder, engine, history, bundle, record, _saved_versions(folder, saved))


def seen_versions(entries: list[dict[str, Any]]) -> frozenset[Version]:
    """The (version, sha256) of a ``state.json``'s version entries."""
    return frozenset((e["version"], e["sha256"]) for e in entries)


def refuse_unseen(folder: str | os.PathLike, seen: frozenset[Version]) -> None:
    """Two runs that each started from what they saw, saving one folder: the second would drop the first's versions.

    Raises:
        StateConflictError: ``folder`` holds a version (past version 0) outside ``seen``.
    """
    _refuse_unseen(Path(folder), _saved_record(Path(folder)), seen)


def _refuse_unseen(folder: Path, saved: dict[str, Any], seen: frozenset[Version]) -> None:
    try:
        unseen = sorted(v for v, sha in seen_versions(saved["versions"]) - seen if v != 0)
    except (KeyError, TypeError):
        return  # no state there, or one too damaged to restore: nothing to lose
    if unseen:
        raise StateConflictError(
            f"{folder} holds head version(s) {', '.join(map(str, unseen))} that this personalizer never loaded (saved "
            "by another process, or by a run that started from the bundle); saving would drop them. Nothing was "
            "written. Continue from that state (Personalizer.load, or `edgeft personalize STATE --continue`), save to "
            "another folder, or delete that one first."
        )


def _save_locked(
    folder: Path,
    engine: HeadEngine,
    history: VersionHistory,
    bundle: Bundle,
    record: dict[str, Any],
    saved: dict[int, dict[str, Any]],
) -> frozenset[Version]:
    before = set(_own_files(folder))
    try:
        versions = [_write_version(folder, v, saved) for v in history.versions]
        optimizer = _write_content_named(folder, "opt", engine.state_suffix, engine.save)
        index = {
            "format_version": STATE_FORMAT_VERSION,
            "bundle": {
                "path": str(bundle.path.resolve()),
                "name": bundle.manifest.name,
                "version": bundle.manifest.version,
                "fingerprint": bundle.fingerprint,
            },
            "engine": engine.name,
            "current": history.current,
            "versions": versions,
            "optimizer": optimizer,
            "pinned": sorted(history.pinned),
            **record,
        }
        atomic.write_bytes(folder / STATE_FILE, _loadable(index, folder))
    except (OSError, RuntimeError, StateError) as e:
        for file in set(_own_files(folder)) - before:
            file.unlink(missing_ok=True)  # this save's own files: the old state.json names none of them
        raise StateError(
            f"Could not save the state to {folder} ({_reason(e)}). The state saved there before is unchanged."
        ) from e
    keep = {v["file"] for v in versions if v["file"]} | {optimizer["file"]}
    for old in _own_files(folder):
        if old.name not in keep:
            old.unlink(missing_ok=True)
    return seen_versions(versions)


def _check_finite(folder: Path, history: VersionHistory, engine: HeadEngine) -> None:
    """Every head the save would write is finite: a NaN or infinite head (a diverged run) is no state to come back to."""
    heads = [(f"head version {v.version}", v.parameters) for v in history.versions]
    for what, parameters in [*heads, ("the current head", engine.parameters())]:
        bad = [name for name, value in parameters.items() if not np.all(np.isfinite(value))]
        if bad:
            raise StateError(
                f"Could not save the state to {folder}: {what}'s {bad[0]} holds NaN or infinite values (training "
                "diverged), and a state holding it would not load. The state saved there before is unchanged; "
                "roll back to a finite version or personalize again with a lower learning rate."
            )


def _loadable(index: dict[str, Any], folder: Path) -> bytes:
    """``state.json``'s bytes for ``index``, once they pass the schema that loading checks (never write what cannot load)."""
    try:
        raw = atomic.json_bytes(index)
    except (TypeError, ValueError) as e:  # a value JSON cannot hold (an object, a circular reference)
        raise StateError(f"the state holds a value JSON cannot hold ({e})") from e
    parse_record(raw, f"the new {STATE_FILE}", "A state that would not load again is not written.")
    return raw


def _own_files(folder: Path) -> list[Path]:
    """The files saves write (never state.json, nor what others keep beside it, such as the service's examples)."""
    return [file for pattern in ("v*-*.npz", "opt-*", ".pending-*", ".*.tmp") for file in folder.glob(pattern)]


def _saved_record(folder: Path) -> dict[str, Any]:
    """The ``state.json`` saved in ``folder`` as it reads, unchecked; empty where there is none or it is no JSON object."""
    try:
        record = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _saved_versions(folder: Path, saved: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The version entries of the ``saved`` record whose files are in ``folder`` (none if it is not readable)."""
    try:
        return {e["version"]: e for e in saved["versions"] if e["file"] and (folder / e["file"]).is_file()}
    except (KeyError, TypeError):
        return {}


def _refuse_another_bundles_state(folder: Path, saved: dict[str, Any], bundle: Bundle) -> None:
    """Saving replaces the state in ``folder``: never one personalized from another bundle."""
    try:
        fingerprint, name = saved["bundle"]["fingerprint"], f"{saved['bundle']['name']}@{saved['bundle']['version']}"
    except (KeyError, TypeError):
        return  # no state there, or one too damaged to restore: nothing to lose
    if fingerprint != bundle.fingerprint:
        raise StateError(
            f"{folder} holds the state of bundle {name}, not of {bundle.manifest.name}@{bundle.manifest.version}; "
            "saving would replace it. Save to another folder, or delete that one first."
        )


def _reason(error: Exception) -> str:
    """What went wrong, in words for the user: the OS's reason, not ORT's source paths."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, RuntimeError):
        return "ONNX Runtime could not write the optimizer checkpoint; is the disk full?"
    return str(error)


def _write_version(folder: Path, version: HeadVersion, saved: dict[int, dict[str, Any]]) -> dict[str, Any]:
    entry = {**version.summary(), "file": None, "sha256": None}
    if version.version == 0:
        return entry
    on_disk = saved.get(version.version)
    if version.saved and on_disk and (on_disk["file"], on_disk["sha256"]) == (version.saved["file"], version.saved["sha256"]):
        return {**entry, **version.saved}  # written (and fsynced) by an earlier save, unchanged since

    def write(path: Path) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **version.parameters)
        path.write_bytes(buffer.getvalue())

    version.saved = _write_content_named(folder, f"v{version.version}", ".npz", write)
    return {**entry, **version.saved}


def _write_content_named(folder: Path, prefix: str, suffix: str, write: Any) -> dict[str, str]:
    """Write through ``write(path)`` atomically to ``<prefix>-<sha[:16]><suffix>``; returns file and sha256."""
    pending = folder / f".pending-{prefix}{suffix}"
    with atomic.atomic_path(pending) as tmp:
        write(tmp)
    sha = file_sha256(pending)
    name = f"{prefix}-{sha[:16]}{suffix}"
    os.replace(pending, folder / name)
    atomic.fsync_dir(folder)
    return {"file": name, "sha256": sha}


def read_state(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[int, dict[str, np.ndarray]], Path]:
    """The record in ``folder/state.json``, each saved version's parameters, and the optimizer state file.

    Raises:
        StateError: no state there, or the state is corrupt or damaged.
    """
    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        hint = " It is a bundle folder: personalize it first (`edgeft personalize`)." if (folder / MANIFEST).is_file() else ""
        raise StateError(f"No saved state at {folder}: {STATE_FILE} not found. Save one with Personalizer.save().{hint}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise StateError(f"{path} cannot be read ({e.strerror}); the state is corrupt.") from e
    record = parse_record(raw, str(path))
    try:
        parameters = {entry["version"]: _read_parameters(folder, entry) for entry in record["versions"] if entry["file"]}
    except StateError:
        raise
    except NPZ_ERRORS as e:
        raise StateError(
            f"A version file of the state in {folder} is not a readable .npz ({type(e).__name__}); the state is corrupt."
        ) from e
    return record, parameters, _verified(folder, record["optimizer"])


def _read_parameters(folder: Path, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    with np.load(_verified(folder, entry)) as data:
        parameters = {k: data[k] for k in data.files}
    if not all(np.issubdtype(v.dtype, np.floating) and np.all(np.isfinite(v)) for v in parameters.values()):
        raise StateError(
            f"Head version {entry['version']} in {folder} holds NaN, infinite or non-float values; it cannot be restored."
        )
    return parameters


def _verified(folder: Path, entry: dict[str, str]) -> Path:
    file = folder / entry["file"]
    if not file.is_file() or file_sha256(file) != entry["sha256"]:
        raise StateError(f"The state file {file} is missing or damaged; the state cannot be restored.")
    return file


def check_same_bundle(record: dict[str, Any], bundle: Bundle) -> None:
    """Refuse a state saved for another bundle (its head would not fit this backbone)."""
    saved = record["bundle"]
    if saved["fingerprint"] != bundle.fingerprint:
        raise StateError(
            f"This state was saved for bundle {saved['name']}@{saved['version']} "
            f"(fingerprint {saved['fingerprint']}), but the bundle given is "
            f"{bundle.manifest.name}@{bundle.manifest.version} (fingerprint {bundle.fingerprint}). "
            "Load it with the bundle it was personalized from."
        )
