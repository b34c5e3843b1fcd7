"""The bundle: one folder with fixed file names and a checksummed manifest.

This module is the only place that knows the bundle's layout and schema. The
exporter writes bundles with :func:`write_manifest`; every reader goes through
:meth:`Bundle.load`, which verifies the format version and every file's size
and sha256 before anything is handed to ONNX Runtime.

Layout (format version 1)::

    manifest.json                 this schema, with a size and sha256 per file
    backbone.onnx                 frozen feature extractor, an inference model
    tokenizer.json                text bundles only (Hugging Face tokenizers)
                                  (image and tensor bundles carry their
                                  preprocessing in the manifest's ``input`` instead)
    head/training_model.onnx      ORT training artifacts of the head, whose
    head/eval_model.onnx          input is the backbone's feature vector; in a
                                  fused bundle (head.backbone_blocks > 0) they
                                  also hold the backbone's last blocks, and the
                                  backbone file holds the blocks below them
    head/optimizer_model.onnx
    head/checkpoint               the shipped head (version 0)
    head/parameters.npz           optional: the same head as numpy arrays (its
                                  trainable parameters)
    head/step_model.onnx          optional: one training step (forward, backward,
    head/step_eval_model.onnx     AdamW) and the forward pass as plain ONNX graphs
                                  with the parameters as inputs, which any
                                  onnxruntime runs (export.step_graph)
    head/labels.json              the labels in the head's output order, beside
                                  the head and checksummed with it: a label list
                                  edited in the manifest alone no longer loads
    head/replay.npz               optional: server examples' head-input features
                                  (``features``, float32) and label indices
                                  (``labels``, int64), class-balanced: the device
                                  trains on them beside the user's examples
    head/guard.npz                optional: the same for held-out server examples
                                  no head trained on; the guard judges every label on them
    reference.json                optional: export-time statistics for drift checks
    reference_sample.npz          optional: a bounded random sample of export-time drift
                                  features and confidences, for the windowed drift test
    fleet.json                    optional: provenance of a head learned by a fleet
    manifest.sig                  optional: the publisher's Ed25519 signature of
                                  manifest.json's bytes (edgeft.signing); not
                                  listed in the manifest, which it covers

The schema is declared once, below, as pydantic dataclasses: :meth:`Manifest.from_json`
checks a manifest strictly (no coercion, no unknown keys, every bound) and names
each field that is wrong, what it expected and what came.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pydantic
from pydantic import ConfigDict, Field, StringConstraints

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
LABELS = "head/labels.json"  # optional (bundles exported before it load): the labels, checksummed with the head
SIGNATURE = "manifest.sig"  # beside the manifest, never listed in it: it signs the manifest's bytes
REFERENCE_SAMPLE = "reference_sample.npz"  # at most REFERENCE_SAMPLE_ROWS export-time drift features, for the windowed test
REFERENCE_SAMPLE_ROWS = 500  # bounds the file (0.8 MB of MiniLM features, 2.6 MB of EfficientNet's) and the test's cost
FLEET = "fleet.json"  # a federated head's provenance: rounds, devices, examples, aggregation, privacy
STEP_MODEL = "head/step_model.onnx"  # one training step in standard ONNX operators, head.step_batch rows
STEP_EVAL_MODEL = "head/step_eval_model.onnx"  # the forward pass with the trainable parameters as inputs
REPLAY = "head/replay.npz"  # server features and labels the device mixes into training
GUARD = "head/guard.npz"  # held-out server features and labels (never trained on) the device's guard judges heads on

# Unknown keys are errors: a typo or a field from a newer format must not be ignored silently.
_SCHEMA = ConfigDict(extra="forbid")
_Name = Annotated[str, StringConstraints(min_length=1)]
_Count = Annotated[int, Field(ge=1)]
_Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# A file inside the bundle: relative, "/"-separated, no part that starts with "." (so no "..") and no odd characters.
_FilePath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._+-]*(/[A-Za-z0-9_][A-Za-z0-9._+-]*){0,15}$", max_length=300)
]


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class InputSpec:
    """What the backbone eats and how raw input is turned into it."""

    modality: Literal["text", "image", "tensor"]
    input_names: Annotated[list[_Name], Field(min_length=1)]
    tokenizer: _Name | None = None  # file name inside the bundle
    # Tokens; longer text is truncated with a warning. At least 3: the tokenizer's two special tokens and one of the text's
    # (below that it cannot truncate, and a long text overruns the backbone).
    max_length: Annotated[int, Field(ge=3)] | None = None
    # Image bundles only; every field defaults to None so format-1 text manifests still parse.
    # [height, width] the backbone expects; at most 8192 a side (a larger one would allocate gigabytes per image).
    image_size: Annotated[list[Annotated[int, Field(ge=1, le=8192)]], Field(min_length=2, max_length=2)] | None = None
    pixel_mean: Annotated[list[float], Field(min_length=1)] | None = None  # per channel, subtracted from 0..255 pixels
    pixel_std: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)] | None = None  # per channel, divides after it
    channel_order: Literal["RGB", "BGR"] | None = None  # the order the backbone was trained on
    layout: Literal["NCHW", "NHWC"] | None = None  # the backbone input's axis order
    # Tensor bundles only (float windows or rows); added after format 1's first release, so None elsewhere.
    # One example's shape: [channels, steps] for a window, [features] for a row.
    tensor_shape: Annotated[list[_Count], Field(min_length=1, max_length=2)] | None = None
    # Per channel (a row's per feature), the server data's mean and standard deviation: x -> (x - mean) / std.
    channel_mean: Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=1)] | None = None
    channel_std: Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=1)] | None = None
    # A window of another length: "exact" refuses it; "crop_or_pad" keeps its centre, or pads both ends with the mean.
    length_policy: Literal["exact", "crop_or_pad"] | None = None

    @pydantic.model_validator(mode="after")
    def _complete_for_modality(self) -> InputSpec:
        needed = _NEEDED[self.modality]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.modality} input needs {', '.join(missing)}")
        if self.modality == "tensor":
            _check_tensor_fields(self)
        channels = {len(v) for v in (self.pixel_mean, self.pixel_std) if v is not None}
        if channels and (len(channels) > 1 or not channels <= {1, 3}):
            raise ValueError("pixel_mean and pixel_std need one value per channel, both 1 (grey) or both 3 (RGB)")
        return self


_NEEDED = {
    "text": ("tokenizer", "max_length"),
    "image": ("image_size", "pixel_mean", "pixel_std", "channel_order", "layout"),
    "tensor": ("tensor_shape", "channel_mean", "channel_std", "length_policy"),
}
# Fields that text and image manifests leave out of their fingerprint while None, so adding them kept states valid.
TENSOR_FIELDS = ("tensor_shape", "channel_mean", "channel_std", "length_policy")


def _check_tensor_fields(spec: InputSpec) -> None:
    channels = spec.tensor_shape[0]
    if len(spec.channel_mean) != channels or len(spec.channel_std) != channels:
        raise ValueError(
            f"channel_mean and channel_std need one value per channel ({channels}, tensor_shape[0]), "
            f"got {len(spec.channel_mean)} and {len(spec.channel_std)}"
        )
    if len(spec.tensor_shape) == 1 and spec.length_policy != "exact":
        raise ValueError("a row (a one-axis tensor_shape) has no steps to crop or pad: length_policy must be 'exact'")


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class BackboneSpec:
    """The frozen feature extractor."""

    precision: Literal["fp32", "int8"]
    feature_size: _Count
    output_name: _Name  # the ONNX output that holds one feature vector per example
    # How per-token outputs became one vector; pooling is part of the graph.
    pooling: Literal["none", "mean", "cls"] = "none"
    # Fused bundles only: the per-example shape (e.g. [channels, height, width]) of the activation
    # the backbone outputs flattened; the head's training artifacts reshape it back.
    intermediate_shape: Annotated[list[_Count], Field(min_length=1)] | None = None


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class HeadSpec:
    """The trainable head and the choices baked into its training artifacts."""

    kind: Literal["linear", "mlp"]
    in_features: _Count
    out_features: _Count
    hidden_size: _Count | None
    trainable: Annotated[list[_Name], Field(min_length=1)]  # parameter names that ORT updates
    frozen: list[_Name]  # parameter names kept fixed inside the head graph
    loss: Literal["cross_entropy"]
    optimizer: Literal["adamw"]
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    trained: bool  # False when the exporter had no data: predict needs a fit first
    input_name: _Name = "features"
    output_name: _Name = "logits"
    # Last backbone blocks that train inside the head's artifacts (FP32); 0: a plain head.
    backbone_blocks: Annotated[int, Field(ge=0)] = 0
    # Rank of the LoRA adapters on those blocks' attention projections (only they and the head train); 0: none.
    lora_rank: Annotated[int, Field(ge=0)] = 0
    # Output slots after the labels, reserved for labels added on the device (out_features = labels + spare).
    spare_labels: Annotated[int, Field(ge=0)] = 0
    # The training graph carries the L2-SP penalty (frozen parameters l2sp.strength, l2sp.anchor.<name>).
    l2sp: bool = False
    # Rows of head/replay.npz (server features the device replays); 0: the bundle ships none.
    replay_examples: Annotated[int, Field(ge=0)] = 0
    # Rows of head/guard.npz (held-out server features the guard judges on, never trained on); 0: none shipped.
    guard_examples: Annotated[int, Field(ge=0)] = 0
    # Rows per step of head/step_model.onnx (smaller batches are padded with zero-weight rows); 0: no step graphs.
    step_batch: Annotated[int, Field(ge=0)] = 0


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class FileEntry:
    size: Annotated[int, Field(ge=0)]
    sha256: _Sha256


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class Manifest:
    """Everything a device needs to know about a bundle, and nothing else."""

    name: _Name
    version: _Name
    task: _Name
    labels: Annotated[list[_Name], Field(min_length=1)]  # the head's outputs, in order (see check_labels_fit_head)
    base_model: dict[str, Any]  # name, licence, where it came from
    input: InputSpec
    backbone: BackboneSpec
    head: HeadSpec
    training: dict[str, Any]  # default device hyperparameters (a TrainConfig)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)  # measured at export
    files: dict[_FilePath, FileEntry] = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    edgeft_version: str = __version__
    created: str = ""

    @pydantic.model_validator(mode="after")
    def _labels_unique(self) -> Manifest:
        repeated = sorted({label for label in self.labels if self.labels.count(label) > 1})
        if repeated:
            raise ValueError(f"labels must be unique, but {', '.join(map(repr, repeated))} appear more than once")
        return self

    @pydantic.model_validator(mode="after")
    def _activation_fits_head(self) -> Manifest:
        shape = self.backbone.intermediate_shape
        if shape is not None and math.prod(shape) != self.head.in_features:
            raise ValueError(
                f"backbone.intermediate_shape {shape} holds {math.prod(shape)} values per example, but head.in_features "
                f"is {self.head.in_features}: the head reads that activation flattened"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """Parse a manifest dict (as ``json.loads`` gives it), with a ``BundleError`` for any schema problem."""
        try:
            raw = json.dumps(data, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as e:
            raise BundleError(f"{MANIFEST} does not match the bundle schema: it is not plain JSON data ({e}).") from e
        return cls.from_json(raw.encode())

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse and check a manifest's bytes: the schema strictly (JSON types, no unknown keys), then the head binding.

        Raises:
            BundleError: the bytes are not a JSON object, the format version is not this edgeft's, a field is
                malformed (the message names each one: what was expected and what came), or the labels do not fit the head.
        """
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise BundleError(f"{MANIFEST} is not valid JSON ({_short(e)}); the bundle is corrupt.") from e
        if not isinstance(data, dict):
            raise BundleError(f"{MANIFEST} must hold a JSON object, got {type(data).__name__}; the bundle is corrupt.")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"Bundle format version {version!r} is not supported; this edgeft "
                f"({__version__}) reads format version {FORMAT_VERSION}. Re-export the "
                "bundle with a matching edgeft version."
            )
        try:
            manifest = _MANIFEST_SCHEMA.validate_json(raw, strict=True)
        except pydantic.ValidationError as e:
            raise BundleError(schema_problems(MANIFEST, e, "Re-export the bundle, or re-download it.")) from e
        check_labels_fit_head(manifest.labels, manifest.head)
        return manifest


def check_labels_fit_head(labels: list[str], head: HeadSpec) -> None:
    """The labels name the head's first outputs one to one, in order; the rest are spare slots.

    A label list that does not fit (one label more or less, or a count from another head) would make
    the device predict wrong names without any error.

    Raises:
        BundleError: the labels and spare slots do not add up to the head's number of outputs.
    """
    if len(labels) + head.spare_labels != head.out_features:
        raise BundleError(
            f"{MANIFEST}: labels has {len(labels)} entries and head.spare_labels is {head.spare_labels}, "
            f"but head.out_features is {head.out_features}; every output of the head needs exactly one label "
            "or spare slot. Re-export the bundle with its own labels."
        )


def schema_problems(source: str, error: pydantic.ValidationError, fix: str) -> str:
    """One message naming every field of ``source`` that failed the schema: where, what was expected, what came."""
    problems = []
    for e in error.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "(the whole object)"
        got = "" if e["type"] in ("missing", "json_invalid") else f", got {_shown(e.get('input'))}"
        problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}{got}")
    shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
    return f"{source} does not match the schema ({len(problems)} problem(s)): {shown}. {fix}"


def _shown(value: object) -> str:
    text = repr(value)
    return f"{text[:60]}… ({type(value).__name__})" if len(text) > 60 else f"{text} ({type(value).__name__})"


def _short(error: Exception) -> str:
    return "nested too deeply" if isinstance(error, RecursionError) else str(error)


_MANIFEST_SCHEMA = pydantic.TypeAdapter(Manifest)
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
                f"{name} of the bundle at {self.path} is not readable JSON ({_short(e)}); re-export the bundle."
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
        meaning = {"labels": m.labels, "input": spec, "head": dataclasses.asdict(m.head)}
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
