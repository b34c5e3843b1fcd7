"""Backbone features, computed once per example and kept for every later epoch and fit.

Entries are keyed by the backbone's checksum and the example's content, so a
changed bundle never serves stale features. The most recently used features
stay in memory up to a byte budget; the rest spill to one append-only file on
disk (one record per example: key and vector), so 100k examples cost
disk, not a phone's memory. With a ``folder`` given, every entry is written
through to disk and a later process reuses them.
"""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgeft.errors import StateError


class FeatureCache:
    """Memory-bounded feature store with disk spill.

    Args:
        namespace: what the features depend on besides the example (the
            backbone's and tokenizer's checksums, the max length).
        dim: the length of one feature vector.
        memory_bytes: features kept in memory; beyond this they go to disk.
        folder: a folder for persistent features; None spills to a temporary
            folder removed when the cache is garbage-collected.
    """

    def __init__(self, namespace: str, dim: int, memory_bytes: int, folder: str | os.PathLike | None = None) -> None:
        self.namespace = hashlib.sha256(namespace.encode()).hexdigest()[:16]
        self.memory_bytes = int(memory_bytes)
        self.persistent = folder is not None
        self._folder = Path(folder) if folder is not None else None
        self._memory: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._memory_used = 0
        self._disk: dict[str, int] = {}
        self._dim = dim
        self.hits = self.misses = 0
        if self._folder is not None:
            self._load_index()

    @staticmethod
    def key_of(example: str | np.ndarray) -> str:
        """A text's or an image's content hash (an image's shape is part of its content)."""
        if isinstance(example, str):
            return hashlib.sha256(example.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        data = np.ascontiguousarray(example)
        return hashlib.sha256(repr(data.shape).encode() + data.tobytes()).hexdigest()[:32]

    def __len__(self) -> int:
        return len(self._memory.keys() | self._disk.keys())

    def get(self, key: str) -> np.ndarray | None:
        """The cached feature vector of ``key``, or None."""
        vector = self._memory.get(key)
        if vector is not None:
            self._memory.move_to_end(key)
        elif key in self._disk:
            vector = self._read_rows([self._disk[key]])[0]
        self.hits += vector is not None
        self.misses += vector is None
        return vector

    def uncached(self, keys: Iterable[str]) -> list[str]:
        """The distinct keys with no cached features, in order; the check reads no vector from disk."""
        seen: set[str] = set()
        missing = []
        for key in keys:
            if key in seen:
                continue
            seen.add(key)
            if key in self._memory:
                self._memory.move_to_end(key)  # used now, as get() would count it
            elif key not in self._disk:
                missing.append(key)
        self.misses += len(missing)
        self.hits += len(seen) - len(missing)
        return missing

    def put(self, keys: Iterable[str], vectors: np.ndarray) -> None:
        """Store a feature vector per key; least recently used ones spill to disk past the budget."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self._dim)
        keys = list(keys)
        if self.persistent:
            self._append(
                [k for k in keys if k not in self._disk], vectors[[i for i, k in enumerate(keys) if k not in self._disk]]
            )
        for key, vector in zip(keys, vectors):
            if key not in self._memory:
                self._memory[key] = vector.copy()
                self._memory_used += vector.nbytes
        spilled: dict[str, np.ndarray] = {}
        while self._memory_used > self.memory_bytes and self._memory:
            key, vector = self._memory.popitem(last=False)
            self._memory_used -= vector.nbytes
            if key not in self._disk:
                spilled[key] = vector
        if spilled:  # one append for the lot: a file opened per vector made 100k examples take seconds
            self._append(list(spilled), np.stack(list(spilled.values())))

    def matrix(self, keys: list[str]) -> np.ndarray:
        """The features of ``keys`` as one (n, dim) array; a disk-backed memmap when over the budget.

        Raises:
            StateError: a key is not cached (its features were never computed).
        """
        dim = self._dim
        if len(keys) * dim * 4 <= self.memory_bytes:
            return self._rows_of(keys)
        fd, name = tempfile.mkstemp(prefix="features-", suffix=".f32", dir=self._spill_folder())
        # Written with plain writes, read back as a read-only memmap: its pages are clean and file-backed,
        # so the OS can drop them under memory pressure instead of the process growing by n * dim * 4 bytes.
        with os.fdopen(fd, "wb") as f:
            for start in range(0, len(keys), 4096):
                f.write(self._rows_of(keys[start : start + 4096]).tobytes())
        out = np.memmap(name, dtype=np.float32, mode="r", shape=(len(keys), dim))
        weakref.finalize(out, _unlink_quietly, name)
        return out

    def _rows_of(self, keys: list[str]) -> np.ndarray:
        """Vectors of ``keys``: memory first, the rest in one read of the disk records."""
        out = np.empty((len(keys), self._dim), dtype=np.float32)
        on_disk = []
        for i, key in enumerate(keys):
            vector = self._memory.get(key)
            if vector is not None:
                out[i] = vector
            elif key in self._disk:
                on_disk.append(i)
            else:
                raise StateError(f"Feature cache has no entry for example key {key}; compute its features first.")
        if on_disk:
            out[on_disk] = self._read_rows([self._disk[keys[i]] for i in on_disk])
        return out

    def _spill_folder(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="edgeft-features-"))
            weakref.finalize(self, shutil.rmtree, str(self._folder), True)
        self._folder.mkdir(parents=True, exist_ok=True)
        return self._folder

    def _file(self) -> Path:
        return self._spill_folder() / f"{self.namespace}-{self._dim}.features"

    def _record(self) -> np.dtype:
        # Key and vector in one record, written by one append: rows and keys can never disagree,
        # and several caches (or processes) may append to the same file.
        return np.dtype([("key", "S32"), ("vector", "<f4", (self._dim,))])  # hex keys: no NUL bytes for S to strip

    def _append(self, keys: list[str], vectors: np.ndarray) -> None:
        if not keys:
            return
        records = np.empty(len(keys), dtype=self._record())
        records["key"] = [k.encode("ascii") for k in keys]
        records["vector"] = vectors
        data = records.tobytes()
        with open(self._file(), "ab") as f:
            f.write(data)
            f.flush()
            start = (f.tell() - len(data)) // records.itemsize
        for i, key in enumerate(keys):
            self._disk[key] = start + i

    def _read_rows(self, rows: list[int]) -> np.ndarray:
        data = np.memmap(self._file(), dtype=self._record(), mode="r")
        return np.array(data["vector"][rows])

    def _load_index(self) -> None:
        path = self._file()
        if not path.is_file():
            return
        size = path.stat().st_size
        whole = size // self._record().itemsize
        if whole * self._record().itemsize != size:  # a record torn by a crash: drop it, later appends stay aligned
            os.truncate(path, whole * self._record().itemsize)
        if whole:
            keys = np.memmap(path, dtype=self._record(), mode="r", shape=(whole,))["key"]
            self._disk = {k.decode("ascii"): i for i, k in enumerate(keys.tolist())}


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
