"""The numpy and step engines' resumable state: one ``.npz`` of the step count, parameters and AdamW moments."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from edgeft.errors import StateError


@dataclasses.dataclass
class AdamState:
    """Parameters and AdamW's moments by name, and the steps taken."""

    params: dict[str, np.ndarray]
    m: dict[str, np.ndarray]
    v: dict[str, np.ndarray]
    step: int = 0

    @classmethod
    def fresh(cls, params: dict[str, np.ndarray]) -> AdamState:
        """``params`` (copied) with zero moments, before any step."""
        return cls(
            {k: v.copy() for k, v in params.items()},
            {k: np.zeros_like(v) for k, v in params.items()},
            {k: np.zeros_like(v) for k, v in params.items()},
        )

    def save(self, path: str | os.PathLike) -> None:
        arrays = {f"param/{k}": v for k, v in self.params.items()}
        arrays |= {f"m/{k}": v for k, v in self.m.items()} | {f"v/{k}": v for k, v in self.v.items()}
        with open(path, "wb") as f:
            np.savez(f, step=np.int64(self.step), **arrays)

    @classmethod
    def load(cls, path: Path) -> AdamState:
        """Raises: StateError: ``path`` is not such a state."""
        state = cls({}, {}, {})
        try:
            with np.load(path) as data:
                state.step = int(data["step"])
                for key in data.files:
                    kind, _, name = key.partition("/")
                    if kind in ("param", "m", "v"):
                        getattr(state, {"param": "params"}.get(kind, kind))[name] = data[key].astype(np.float32)
        except (OSError, ValueError, KeyError) as e:
            raise StateError(f"{path} is not a numpy engine state ({e}).") from e
        return state
