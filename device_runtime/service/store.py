"""Labelled examples and job records kept durably in SQLite beside the state: a restart loses none.

Each ``add`` is one transaction with ``synchronous=FULL``: when the request
that posted examples gets its answer, they are on disk. A personalization job's
record is written when it starts and when it ends, so ``GET /v1/jobs/{id}``
answers after a restart too. An example is kept as the runtime's text, or a
tensor bundle's window or row as its JSON (``{"shape": ..., "data": ...}``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from device_runtime.service.schemas import TensorInput

_SCHEMA = """
CREATE TABLE IF NOT EXISTS examples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    label TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, record TEXT NOT NULL);
"""


def stored_tensor(tensor: TensorInput) -> str:
    """A tensor example as the store keeps it: its JSON, which :func:`as_inputs` reads back."""
    return tensor.model_dump_json()


def as_inputs(stored: list[str], modality: str) -> list[Any]:
    """The stored examples as the runtime takes them: texts as they are, a tensor bundle's from their JSON."""
    if modality != "tensor":
        return stored
    return [TensorInput.model_validate_json(value).array() for value in stored]


class ExampleStore:
    """The device's labelled examples, and a few service facts (the head version)."""

    def __init__(self, path: str | os.PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()  # one connection, shared by the server's threads
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def add(self, texts: list[str], labels: list[str]) -> int:
        """Store the examples in one transaction. Returns the total now stored."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO examples (text, label) VALUES (?, ?)", zip(texts, labels))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._count()

    def delete(self, label: str | None = None) -> int:
        """Delete the stored examples of ``label`` (None: every example). Returns how many were deleted."""
        with self._lock:
            if label is None:
                return self._db.execute("DELETE FROM examples").rowcount
            return self._db.execute("DELETE FROM examples WHERE label = ?", (label,)).rowcount

    def save_job(self, job_id: str, record: dict[str, Any], keep: int) -> None:
        """Write a job's record (replacing an earlier one of that job); only the ``keep`` newest jobs are kept."""
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, record) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                (job_id, json.dumps(record, default=str)),
            )
            self._db.execute("DELETE FROM jobs WHERE seq NOT IN (SELECT seq FROM jobs ORDER BY seq DESC LIMIT ?)", (keep,))

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The record saved for job ``job_id``, or None."""
        with self._lock:
            row = self._db.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def jobs(self) -> list[dict[str, Any]]:
        """Every saved job record, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM jobs ORDER BY seq").fetchall()
        return [json.loads(r[0]) for r in rows]

    def count(self) -> int:
        with self._lock:
            return self._count()

    def counts_by_label(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT label, COUNT(*) FROM examples GROUP BY label ORDER BY label"))

    def all(self) -> tuple[list[str], list[str]]:
        """Every stored example, oldest first, as (texts, labels)."""
        with self._lock:
            rows = self._db.execute("SELECT text, label FROM examples ORDER BY id").fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM examples").fetchone()[0]
