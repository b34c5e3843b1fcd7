"""The bundle: one folder with fixed file names (:mod:`edgeft.layout`) and a checksummed manifest (:mod:`edgeft.manifest`).

The exporter writes bundles with :func:`write_manifest`; every reader goes through
:meth:`Bundle.load`, which verifies the format version and every file's size
and sha256 before anything is handed to ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeft import atomic
from edgeft.errors import BundleError
from edgeft.layout import BACKBONE, HEAD_FILES, LABELS, MANIFEST, PARAMETERS, SIGNATURE, TOKENIZER
from edgeft.manifest import TENSOR_FIELDS, FileEntry, Manifest, check_labels_fit_head, short_error

# What np.load and zipfile raise for a damaged .npz: not a zip, a pickle, cut short, a CRC or header that does not
# match, a compression method or zip version it does not know (NotImplementedError), "encrypted" (RuntimeError).
NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError)
TrustSource = Any  # an edgeft.signing.TrustPolicy, the path of a trust file, or None (see Bundle.load)


class Bundle:
    """A verified bundle on disk. Create with :meth:`load`."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: bool = True, trust: TrustSource = None) -> Bundle:
        """Read and (by default) verify the bundle at ``path``.

        Args:
            path: the bundle folder.
            verify: check every listed file's size and sha256 and the signature. Under a trust policy they are
                always checked: ``verify=False`` only skips them where no policy is in force.
            trust: the device's trust policy (:class:`~edgeft.signing.TrustPolicy` or the path of a trust file);
                with one, the manifest must carry a valid signature by a trusted, unrevoked key. None: the trust
                file ``$EDGEFT_TRUST`` names, if set; else no policy, and an unsigned bundle loads with an
                :class:`~edgeft.signing.UnsignedBundleWarning` (a signed one with an
                :class:`~edgeft.signing.UnverifiedSignatureWarning`).

        Raises:
            BundleError: the folder, the manifest or a listed file is missing,
                unreadable, of another format version, malformed, or altered.
            SignatureError: under a trust policy, the bundle is unsigned, wrongly signed or signed by an untrusted key.
            ConfigError: the trust file is missing or malformed.
        """
        from edgeft import signing  # signing reads this module's layout names

        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise BundleError(f"No bundle at {path}: {MANIFEST} not found. Create a bundle with `edgeft export`.")
        try:
            raw = manifest_path.read_bytes()
        except OSError as e:
            raise BundleError(f"{manifest_path} cannot be read ({e.strerror}); the bundle is corrupt.") from e
        manifest = Manifest.from_json(raw)
        _check_required_files(manifest)
        bundle = cls(path, manifest)
        policy = signing.policy_for(trust)
        if verify or policy is not None:
            signing.check_bundle_signature(path, raw, policy)
            bundle.verify()
            bundle._check_head_labels()
        return bundle

    def _check_head_labels(self) -> None:
        """The manifest's labels are those written beside the head (a verified file): same names, same order."""
        if LABELS not in self.manifest.files:
            return
        recorded = self.read_json(LABELS)
        if recorded != self.manifest.labels:
            raise BundleError(
                f"{MANIFEST}: labels is {self.manifest.labels}, but the head was exported for {recorded} ({LABELS}); "
                "its outputs would be named wrongly. The manifest was edited: re-export or re-download the bundle."
            )

    def verify(self) -> None:
        """Check every listed file's size and sha256 against the manifest."""
        for name, entry in self.manifest.files.items():
            file = self.path / name
            if not file.is_file():
                raise BundleError(f"Bundle file {name} is missing from {self.path}; re-export or re-download the bundle.")
            try:
                matches = file.stat().st_size == entry.size and file_sha256(file) == entry.sha256
            except OSError as e:
                raise BundleError(
                    f"Bundle file {name} in {self.path} cannot be read ({e.strerror}); the bundle is damaged."
                ) from e
            if not matches:
                raise BundleError(
                    f"Bundle file {name} does not match its checksum in {MANIFEST}: it was altered "
                    "or damaged. Re-export or re-download the bundle."
                )

    def file(self, name: str) -> Path:
        """Absolute path of one of the bundle's files."""
        return self.path / name

    def read_json(self, name: str) -> Any:
        """The JSON value in the bundle's file ``name``.

        Raises:
            BundleError: the file cannot be read or is not JSON (a file altered with its checksum, say).
        """
        try:
            return json.loads(self.file(name).read_bytes())
        except (OSError, ValueError, RecursionError) as e:
            raise BundleError(
                f"{name} of the bundle at {self.path} is not readable JSON ({short_error(e)}); re-export the bundle."
            ) from e

    def read_arrays(self, name: str, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Every array in the bundle's ``.npz`` file ``name``, read whole (so a damaged member fails here).

        Raises:
            BundleError: the file is no readable ``.npz`` of plain arrays, or lacks one of ``keys``.
        """
        try:
            with np.load(self.file(name), allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except NPZ_ERRORS as e:
            raise BundleError(f"{name} of the bundle at {self.path} is not a readable .npz ({e}); re-export the bundle.") from e
        missing = [key for key in keys if key not in arrays]
        if missing:
            raise BundleError(f"{name} of the bundle at {self.path} has no array {missing[0]!r}; re-export the bundle.")
        return arrays

    @property
    def fingerprint(self) -> str:
        """A short id of what a personalized head depends on: every file, the labels in order, input and head specs.

        The name, version and metrics are left out: a new version with the same model keeps its users' heads.
        """
        m = self.manifest
        digest = hashlib.sha256()
        for name in sorted(m.files):
            digest.update(f"{name}:{m.files[name].sha256};".encode())
        spec = {k: v for k, v in dataclasses.asdict(m.input).items() if v is not None or k not in TENSOR_FIELDS}
        # ort_artifacts is left out while True (every bundle before it), so adding it kept states valid.
        head = {k: v for k, v in dataclasses.asdict(m.head).items() if k != "ort_artifacts" or not v}
        meaning = {"labels": m.labels, "input": spec, "head": head}
        digest.update(json.dumps(meaning, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    @property
    def backbone_sha256(self) -> str:
        return self.manifest.files[BACKBONE].sha256

    def __repr__(self) -> str:
        m = self.manifest
        return f"Bundle({m.name}@{m.version}, {len(m.labels)} labels, {m.backbone.precision} backbone, {self.path})"


def _check_required_files(manifest: Manifest) -> None:
    # A bundle without ORT's training artifacts trains through its step graphs from its parameters' numpy copy.
    required = [BACKBONE, *(HEAD_FILES if manifest.head.ort_artifacts else (PARAMETERS,))]
    if manifest.input.modality == "text":
        required.append(TOKENIZER)
    missing = [f for f in required if f not in manifest.files]
    if missing:
        raise BundleError(f"manifest.json lists no entry for required file(s): {', '.join(missing)}")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Manifest:
    """Write the labels beside the head (``head/labels.json``), checksum every file under ``folder`` into ``manifest``
    and write it there (an old ``manifest.sig`` is removed: it signed the manifest replaced).

    Returns the manifest as written, with ``files`` and ``created`` filled in.
    """
    folder = Path(folder)
    check_labels_fit_head(manifest.labels, manifest.head)
    atomic.write_json(folder / LABELS, manifest.labels)
    files = {
        p.relative_to(folder).as_posix(): FileEntry(p.stat().st_size, file_sha256(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST, SIGNATURE)
    }
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest = dataclasses.replace(manifest, files=files, created=created)
    _check_required_files(manifest)
    (folder / SIGNATURE).unlink(missing_ok=True)  # it signed the manifest being replaced
    atomic.write_json(folder / MANIFEST, manifest.to_dict())
    return manifest
