"""Where the registry keeps bundles, behind one small interface.

:class:`BundleStorage` is all the routers see; :class:`LocalStorage` keeps
bundles on local disk. An object store (S3, GCS) can replace it by
implementing the same six methods: listing, reading the manifest, a file's
size, a ranged read, and publishing a verified staged folder.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeft import atomic
from edgeft.layout import MANIFEST
from edgeft.registry.errors import NotFoundError, VersionExistsError
from edgeft.registry.paths import check_name, check_relative_path

_CHUNK = 1 << 16


class BundleStorage(abc.ABC):
    """The registry's storage. Names, versions and paths arrive already validated."""

    @abc.abstractmethod
    def names(self) -> list[str]:
        """Every bundle name, sorted."""

    @abc.abstractmethod
    def versions(self, name: str) -> list[dict[str, str]]:
        """``{"version", "published"}`` of each version of ``name``, oldest first.

        Raises:
            NotFoundError: no bundle called ``name``.
        """

    @abc.abstractmethod
    def manifest(self, name: str, version: str) -> bytes:
        """The manifest exactly as published (its bytes are what devices verify against)."""

    @abc.abstractmethod
    def size(self, name: str, version: str, path: str) -> int:
        """Size in bytes of one of the version's files."""

    @abc.abstractmethod
    def read(self, name: str, version: str, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``start`` to ``end`` (inclusive; None: to the end) of one file."""

    @abc.abstractmethod
    def publish(self, name: str, version: str, staged: Path) -> None:
        """Store the verified bundle folder ``staged`` as ``name@version``, all or nothing.

        Raises:
            VersionExistsError: that version exists already; versions are immutable.
        """


class LocalStorage(BundleStorage):
    """Bundles on local disk: ``ROOT/<name>/<version>/bundle/`` plus ``published.json``.

    A version appears by one ``rename`` of a complete folder, so readers never
    see half a bundle and two concurrent publishes of one version cannot both win.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, name: str) -> list[dict[str, str]]:
        folder = self.root / name
        if not folder.is_dir():
            raise NotFoundError(f"No bundle named {name!r} in this registry.")
        found = []
        for version in folder.iterdir():
            meta = version / "published.json"
            if meta.is_file():
                found.append({"version": version.name, "published": json.loads(meta.read_text())["published"]})
        return sorted(found, key=lambda v: v["published"])

    def manifest(self, name: str, version: str) -> bytes:
        return self._file(name, version, MANIFEST).read_bytes()

    def size(self, name: str, version: str, path: str) -> int:
        return self._file(name, version, path).stat().st_size

    def read(self, name: str, version: str, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        file = self._file(name, version, path)
        remaining = (file.stat().st_size if end is None else end + 1) - start
        with open(file, "rb") as f:
            f.seek(start)
            while remaining > 0:
                block = f.read(min(_CHUNK, remaining))
                if not block:
                    break
                remaining -= len(block)
                yield block

    def publish(self, name: str, version: str, staged: Path) -> None:
        final = self.root / name / version
        if final.exists():
            raise VersionExistsError(f"{name}@{version} is already published; versions are immutable. Publish a new version.")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=final.parent))
        try:
            shutil.copytree(staged, tmp / "bundle")
            published = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
            atomic.write_json(tmp / "published.json", {"published": published})
            for p in tmp.rglob("*"):
                if p.is_file():
                    atomic.fsync_file(p)
            try:
                os.rename(tmp, final)  # fails if another publish of this version won the race
            except OSError as e:
                raise VersionExistsError(f"{name}@{version} is already published; versions are immutable.") from e
            atomic.fsync_dir(final.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _file(self, name: str, version: str, path: str) -> Path:
        check_name(name)
        check_name(version, "version")
        check_relative_path(path)
        version_dir = self.root / name / version
        if not (version_dir / "published.json").is_file():
            raise NotFoundError(f"No version {version!r} of bundle {name!r} in this registry.")
        file = version_dir / "bundle" / path
        if not file.is_file() or file.is_symlink():
            raise NotFoundError(f"{name}@{version} has no file {path!r}.")
        return file
