"""The registry's settings, in one place. The CLI and tests build them explicitly."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class RegistrySettings:
    """How one registry server behaves."""

    root: Path  # where LocalStorage keeps bundles
    publish_token: str | None = None  # bearer token required to publish; None refuses every publish
    read_token: str | None = None  # when set, reading needs this token (or the publish token) too
    max_upload_bytes: int = 512 * 1024 * 1024  # a MiniLM INT8 bundle is ~50 MB; a 4x margin and more

    @classmethod
    def from_env(cls, root: str | os.PathLike, **overrides: object) -> RegistrySettings:
        """Settings with tokens from ``EDGEFT_REGISTRY_TOKEN`` and ``EDGEFT_REGISTRY_READ_TOKEN``."""
        values: dict[str, object] = {
            "publish_token": os.environ.get("EDGEFT_REGISTRY_TOKEN") or None,
            "read_token": os.environ.get("EDGEFT_REGISTRY_READ_TOKEN") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(root=Path(root), **values)  # type: ignore[arg-type]
