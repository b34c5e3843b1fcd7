"""The manifest's schema, declared once as pydantic dataclasses.

:meth:`Manifest.from_json` checks a manifest strictly (no coercion, no unknown keys, every bound) and names
each field that is wrong, what it expected and what came. The files it lists are named in :mod:`edgeft.layout`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Annotated, Any, Literal

import pydantic
from pydantic import ConfigDict, Field, StringConstraints

from edgeft import __version__
from edgeft.errors import BundleError
from edgeft.layout import FORMAT_VERSION, MANIFEST

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
    # ORT's training artifacts (head/training_model.onnx, eval_model.onnx, optimizer_model.onnx, checkpoint) ship;
    # False: exported where onnxruntime-training was missing, so the step graphs and head/parameters.npz alone train it.
    ort_artifacts: bool = True

    @pydantic.model_validator(mode="after")
    def _trainable_somehow(self) -> HeadSpec:
        if not self.ort_artifacts and not self.step_batch and (self.backbone_blocks or self.lora_rank):
            raise ValueError(
                "a bundle whose last backbone blocks train needs ORT's training artifacts or step graphs, "
                "but ort_artifacts is false and step_batch is 0"
            )
        return self

    @property
    def artifact_sets(self) -> tuple[str, ...]:
        """The engines' artifact sets this bundle ships: ``"ort"`` (ORT's training artifacts), ``"step"`` (step graphs)."""
        return tuple(name for name, shipped in (("ort", self.ort_artifacts), ("step", self.step_batch > 0)) if shipped)


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
            raise BundleError(f"{MANIFEST} is not valid JSON ({short_error(e)}); the bundle is corrupt.") from e
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


def short_error(error: Exception) -> str:
    """A JSON parser's error in a few words (a RecursionError's own message is long and says nothing)."""
    return "nested too deeply" if isinstance(error, RecursionError) else str(error)


_MANIFEST_SCHEMA = pydantic.TypeAdapter(Manifest)
