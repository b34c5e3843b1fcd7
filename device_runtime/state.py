"""A personalized head on disk: crash-safe, and tied to the bundle it came from.

Layout::

    state.json            which bundle, which checkpoint file, config, metrics
    head-<sha256[:16]>.ckpt   ORT checkpoint with the head and AdamW's moments

A save writes the new checkpoint under a new name first and replaces
``state.json`` last, atomically. A crash at any moment therefore leaves either
the old or the new state whole; checkpoints no longer named are removed after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from device_runtime.ort_training import HeadTrainingSession
from edgeft import atomic
from edgeft.bundle import Bundle, file_sha256
from edgeft.errors import StateError

STATE_FORMAT_VERSION = 1
STATE_FILE = "state.json"


def save_state(folder: str | os.PathLike, session: HeadTrainingSession, bundle: Bundle, record: dict[str, Any]) -> None:
    """Write ``session``'s head and ``record`` (config, metrics, history) into ``folder``.

    Raises:
        StateError: the state could not be written (e.g. disk full); whatever
            was saved in ``folder`` before is unchanged.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(folder / "pending.ckpt") as tmp:
            session.save_checkpoint(tmp, include_optimizer_state=True)
        pending = folder / "pending.ckpt"
        sha = file_sha256(pending)
        checkpoint = f"head-{sha[:16]}.ckpt"
        os.replace(pending, folder / checkpoint)
        atomic.write_json(folder / STATE_FILE, {
            "format_version": STATE_FORMAT_VERSION,
            "bundle": {
                "path": str(bundle.path.resolve()),
                "name": bundle.manifest.name,
                "version": bundle.manifest.version,
                "fingerprint": bundle.fingerprint,
            },
            "checkpoint": checkpoint,
            "checkpoint_sha256": sha,
            **record,
        })
    except (OSError, RuntimeError) as e:
        raise StateError(f"Could not save the state to {folder}: {e}. The state saved there before is unchanged.") from e
    _remove_stale_checkpoints(folder, keep=checkpoint)


def _remove_stale_checkpoints(folder: Path, keep: str) -> None:
    for old in folder.glob("head-*.ckpt"):
        if old.name != keep:
            old.unlink(missing_ok=True)


def read_state(folder: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """The record in ``folder/state.json`` and the verified checkpoint it names.

    Raises:
        StateError: no state there, or the state is corrupt.
    """
    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        raise StateError(f"No saved state at {folder}: {STATE_FILE} not found. Save one with Personalizer.save().")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateError(f"{path} is not valid JSON ({e}); the state is corrupt.") from e
    if record.get("format_version") != STATE_FORMAT_VERSION:
        raise StateError(f"{path} has state format {record.get('format_version')!r}; this edgeft reads {STATE_FORMAT_VERSION}.")
    checkpoint = folder / record["checkpoint"]
    if not checkpoint.is_file() or file_sha256(checkpoint) != record["checkpoint_sha256"]:
        raise StateError(f"The head checkpoint {checkpoint} is missing or damaged; the state cannot be restored.")
    return record, checkpoint


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
