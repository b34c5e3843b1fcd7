"""The bundle: one folder with fixed file names and a checksummed manifest.

This module is the only place that knows the bundle's layout and schema. The
exporter writes bundles with :func:`write_manifest`; every reader goes through
:meth:`Bundle.load`, which verifies the format version and every file's size
and sha256 before anything is handed to ONNX Runtime.

Layout (format version 1)::

    manifest.json                 this schema, with a size and sha256 per file
    backbone.onnx                 frozen feature extractor, an inference model
    tokenizer.json                text bundles only (Hugging Face tokenizers)
                                  (image bundles carry their preprocessing in
                                  the manifest's ``input`` instead)
    head/training_model.onnx      ORT training artifacts of the head, whose
    head/eval_model.onnx          input is the backbone's feature vector; in a
                                  fused bundle (head.backbone_blocks > 0) they
                                  also hold the backbone's last blocks, and the
                                  backbone file holds the blocks below them
    head/optimizer_model.onnx
    head/checkpoint               the shipped head (version 0)
    head/parameters.npz           optional: the same head as numpy arrays
    head/replay.npz               optional: server examples' head-input features
                                  (``features``, float32) and label indices
                                  (``labels``, int64), class-balanced: replay
    reference.json                optional: export-time statistics for drift checks
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgeft import __version__, atomic
from edgeft.errors import BundleError

FORMAT_VERSION = 1

MANIFEST = "manifest.json"
BACKBONE = "backbone.onnx"
TOKENIZER = "tokenizer.json"
TRAINING_MODEL = "head/training_model.onnx"
EVAL_MODEL = "head/eval_model.onnx"
OPTIMIZER_MODEL = "head/optimizer_model.onnx"
CHECKPOINT = "head/checkpoint"

HEAD_FILES = (TRAINING_MODEL, EVAL_MODEL, OPTIMIZER_MODEL, CHECKPOINT)
# Optional files (bundles without them still load):
PARAMETERS = "head/parameters.npz"  # the shipped head's parameters, for engines without ORT training
REFERENCE = "reference.json"  # feature and confidence statistics at export, for drift checks
REPLAY = "head/replay.npz"  # server features and labels the device mixes into training and guards every label on


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What the backbone eats and how raw input is turned into it."""

    modality: str  # "text" or "image"
    input_names: list[str]
    tokenizer: str | None = None  # file name inside the bundle
    max_length: int | None = None  # tokens; longer text is truncated with a warning
    # Image bundles only; every field defaults to None so format-1 text manifests still parse.
    image_size: list[int] | None = None  # [height, width] the backbone expects
    pixel_mean: list[float] | None = None  # per channel, subtracted from 0..255 pixels
    pixel_std: list[float] | None = None  # per channel, divides after the subtraction
    channel_order: str | None = None  # "RGB" or "BGR": the order the backbone was trained on
    layout: str | None = None  # "NCHW" or "NHWC": the backbone input's axis order


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """The frozen feature extractor."""

    precision: str  # "fp32" or "int8"
    feature_size: int
    output_name: str  # the ONNX output that holds one feature vector per example
    # How per-token outputs became one vector ("none", "mean", "cls"); pooling is part of the graph.
    pooling: str = "none"
    # Fused bundles only: the per-example shape (e.g. [channels, height, width]) of the activation
    # the backbone outputs flattened; the head's training artifacts reshape it back.
    intermediate_shape: list[int] | None = None


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """The trainable head and the choices baked into its training artifacts."""

    kind: str  # "linear" or "mlp"
    in_features: int
    out_features: int
    hidden_size: int | None
    trainable: list[str]  # parameter names that ORT updates
    frozen: list[str]  # parameter names kept fixed inside the head graph
    loss: str
    optimizer: str
    weight_decay: float
    trained: bool  # False when the exporter had no data: predict needs a fit first
    input_name: str = "features"
    output_name: str = "logits"
    # Last backbone blocks that train inside the head's artifacts (FP32); 0: a plain head.
    backbone_blocks: int = 0
    # Output slots after the labels, reserved for labels added on the device (out_features = labels + spare).
    spare_labels: int = 0
    # The training graph carries the L2-SP penalty (frozen parameters l2sp.strength, l2sp.anchor.<name>).
    l2sp: bool = False
    # Rows of head/replay.npz (server features the device replays); 0: the bundle ships none.
    replay_examples: int = 0


@dataclasses.dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Everything a device needs to know about a bundle, and nothing else."""

    name: str
    version: str
    task: str
    labels: list[str]
    base_model: dict[str, Any]  # name, licence, where it came from
    input: InputSpec
    backbone: BackboneSpec
    head: HeadSpec
    training: dict[str, Any]  # default device hyperparameters (a TrainConfig)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)  # measured at export
    files: dict[str, FileEntry] = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    edgeft_version: str = __version__
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Parse a manifest dict, with a ``BundleError`` for any schema problem."""
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"Bundle format version {version!r} is not supported; this edgeft "
                f"({__version__}) reads format version {FORMAT_VERSION}. Re-export the "
                "bundle with a matching edgeft version."
            )
        try:
            nested = {
                "input": _parse(InputSpec, data["input"]),
                "backbone": _parse(BackboneSpec, data["backbone"]),
                "head": _parse(HeadSpec, data["head"]),
                "files": {k: _parse(FileEntry, v) for k, v in data.get("files", {}).items()},
            }
            return _parse(cls, {**data, **nested})
        except (KeyError, TypeError, AttributeError) as e:
            raise BundleError(f"manifest.json does not match the bundle schema: {e}") from e


def _parse(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BundleError(f"manifest.json has unknown {cls.__name__} key(s): {', '.join(unknown)}")
    return cls(**values)


class Bundle:
    """A verified bundle on disk. Create with :meth:`load`."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: bool = True) -> Bundle:
        """Read and (by default) verify the bundle at ``path``.

        Raises:
            BundleError: the folder, the manifest or a listed file is missing,
                unreadable, of another format version, or altered.
        """
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise BundleError(
                f"No bundle at {path}: {MANIFEST} not found. Create a bundle with `edgeft export`."
            )
        try:
            data = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"{manifest_path} is not valid JSON ({e}); the bundle is corrupt.") from e
        manifest = Manifest.from_dict(data)
        _check_required_files(manifest)
        bundle = cls(path, manifest)
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> None:
        """Check every listed file's size and sha256 against the manifest."""
        for name, entry in self.manifest.files.items():
            file = self.path / name
            if not file.is_file():
                raise BundleError(f"Bundle file {name} is missing from {self.path}; re-export or re-download the bundle.")
            if file.stat().st_size != entry.size or file_sha256(file) != entry.sha256:
                raise BundleError(
                    f"Bundle file {name} does not match its checksum in {MANIFEST}: it was altered "
                    "or damaged. Re-export or re-download the bundle."
                )

    def file(self, name: str) -> Path:
        """Absolute path of one of the bundle's files."""
        return self.path / name

    @property
    def fingerprint(self) -> str:
        """A short id of what a personalized head depends on: every file, the labels in order, input and head specs.

        The name, version and metrics are left out: a new version with the same model keeps its users' heads.
        """
        m = self.manifest
        digest = hashlib.sha256()
        for name in sorted(m.files):
            digest.update(f"{name}:{m.files[name].sha256};".encode())
        meaning = {"labels": m.labels, "input": dataclasses.asdict(m.input), "head": dataclasses.asdict(m.head)}
        digest.update(json.dumps(meaning, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    @property
    def backbone_sha256(self) -> str:
        return self.manifest.files[BACKBONE].sha256

    def __repr__(self) -> str:
        m = self.manifest
        return f"Bundle({m.name}@{m.version}, {len(m.labels)} labels, {m.backbone.precision} backbone, {self.path})"


def _check_required_files(manifest: Manifest) -> None:
    required = [BACKBONE, *HEAD_FILES]
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
    """Checksum every file under ``folder`` into ``manifest`` and write it there.

    Returns the manifest as written, with ``files`` and ``created`` filled in.
    """
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): FileEntry(p.stat().st_size, file_sha256(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest = dataclasses.replace(manifest, files=files, created=created)
    _check_required_files(manifest)
    atomic.write_json(folder / MANIFEST, manifest.to_dict())
    return manifest
