"""The schema of ``state.json``, declared once: :func:`parse_record` checks a saved state's index strictly.

Strict means JSON types as written (no "3" for 3), no unknown keys, every bound
(versions >= 0, file names without folders, 64-digit sha256). A record that
passes can be used without further checks: every malformed field is a
``StateError`` naming the field, what was expected and what came.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

import pydantic
from pydantic import ConfigDict, Field, StringConstraints

from edgeft.errors import StateError
from edgeft.manifest import schema_problems

STATE_FORMAT_VERSION = 2

_SCHEMA = ConfigDict(extra="forbid")
_Version = Annotated[int, Field(ge=0)]
_Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# A file beside state.json: never a path into another folder.
_FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=200)]
_Floats = list[Annotated[float, Field(allow_inf_nan=False)]]


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class BundleRef:
    path: str
    name: str
    version: str
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class VersionEntry:
    version: _Version
    created: str
    metrics: dict[str, Any]
    file: _FileName | None  # None for version 0: the bundle ships it
    sha256: _Sha256 | None

    @pydantic.model_validator(mode="after")
    def _file_unless_shipped(self) -> VersionEntry:
        if (self.file is None) != (self.version == 0) or (self.file is None) != (self.sha256 is None):
            raise ValueError("version 0 has no file and no sha256; every other version has both")
        return self


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class FileRef:
    file: _FileName
    sha256: _Sha256


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class SeenStats:
    """What :class:`~device_runtime.drift.RunningStats` saves."""

    count: Annotated[int, Field(ge=0)]
    feature_mean: _Floats | None
    feature_std: _Floats | None
    confidence_count: Annotated[int, Field(ge=0)]
    confidence_mean: Annotated[float, Field(allow_inf_nan=False)]
    confidence_std: Annotated[float, Field(allow_inf_nan=False)]


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class MonitorState:
    """What :class:`~device_runtime.monitor.DriftMonitor` saves: the recent window of drift features."""

    shape: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]
    features: str  # base64 of little-endian float32 rows, shape[0] x shape[1]
    confidence: _Floats
    times: _Floats
    observed: Annotated[int, Field(ge=0)]
    since_check: Annotated[int, Field(ge=0)]
    alarm: bool

    @pydantic.model_validator(mode="after")
    def _rows_agree(self) -> MonitorState:
        rows, width = self.shape
        try:
            size = len(base64.b64decode(self.features, validate=True))
        except binascii.Error as e:
            raise ValueError(f"features is not base64 ({e})") from e
        if size != rows * width * 4 or len(self.confidence) != rows or len(self.times) != rows:
            raise ValueError(
                f"shape {self.shape} does not match {size} bytes of features, "
                f"{len(self.confidence)} confidences and {len(self.times)} times"
            )
        return self


@pydantic.dataclasses.dataclass(frozen=True, config=_SCHEMA)
class StateRecord:
    format_version: Literal[2]
    bundle: BundleRef
    engine: Literal["ort", "numpy", "step"]
    current: _Version
    versions: Annotated[list[VersionEntry], Field(min_length=1)]
    optimizer: FileRef
    config: dict[str, Any]  # a TrainConfig; from_dict checks its keys and values
    history: list[float]  # training loss per epoch (NaN where a run diverged)
    report: dict[str, Any]
    seen: SeenStats
    # Versions the user pinned: retention keeps them however many come after (absent in states saved before pinning).
    pinned: list[_Version] = Field(default_factory=list)
    # The windowed drift monitor (absent in states saved before it: they start with an empty window).
    monitor: MonitorState | None = None
    # Labels claimed on this device for the head's spare output slots, in slot order (absent before new labels).
    added_labels: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default_factory=list)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> StateRecord:
        numbers = [v.version for v in self.versions]
        if numbers[0] != 0 or numbers != sorted(set(numbers)):
            raise ValueError(f"versions must start at 0 and increase, got {numbers}")
        if self.current not in numbers:
            raise ValueError(f"current is {self.current} but the versions are {numbers}")
        return self


_RECORD = pydantic.TypeAdapter(StateRecord)


_CORRUPT = "The state is corrupt: restore it from a backup, or personalize again."


def parse_record(raw: bytes, where: str, fix: str = _CORRUPT) -> dict[str, Any]:
    """The record in ``raw`` (state.json's bytes), checked against the schema (``fix``: the advice on a mismatch).

    Returns:
        The record as a plain dict, as it was written.

    Raises:
        StateError: not JSON, another format version, or a field that does not match (each one named).
    """
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise StateError(f"{where} is not valid JSON ({reason}); the state is corrupt.") from e
    found = record.get("format_version") if isinstance(record, dict) else None
    if found != STATE_FORMAT_VERSION:
        raise StateError(
            f"{where} has state format {found!r}; this edgeft reads {STATE_FORMAT_VERSION}. "
            "Personalize again from the bundle (`edgeft personalize BUNDLE ...`) to make a new state."
        )
    try:
        _RECORD.validate_json(raw, strict=True)
    except pydantic.ValidationError as e:
        raise StateError(schema_problems(where, e, fix)) from e
    return record
