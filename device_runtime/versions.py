"""Head versions: every accepted head, with its metrics; version 0 is the shipped head."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np

from edgeft.errors import StateError


@dataclasses.dataclass
class HeadVersion:
    """One head the user had: its parameters and what it scored when accepted."""

    version: int
    parameters: dict[str, np.ndarray]
    metrics: dict[str, Any]
    created: str = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def summary(self) -> dict[str, Any]:
        """The version's record without its parameters (what state.json and reports show)."""
        return {"version": self.version, "created": self.created, "metrics": self.metrics}


class VersionHistory:
    """The versions of one personalized head and which one is current.

    Args:
        shipped: the parameters of the bundle's head, version 0.
        created: when the bundle was exported (version 0's creation time).
    """

    def __init__(self, shipped: dict[str, np.ndarray], created: str) -> None:
        self.versions = [HeadVersion(0, shipped, {"source": "shipped with the bundle"}, created)]
        self.current = 0

    def add(self, parameters: dict[str, np.ndarray], metrics: dict[str, Any]) -> HeadVersion:
        """Record an accepted head as the next version and make it current."""
        version = HeadVersion(self.versions[-1].version + 1, parameters, metrics)
        self.versions.append(version)
        self.current = version.version
        return version

    def get(self, version: int) -> HeadVersion:
        """The version numbered ``version``.

        Raises:
            StateError: no such version.
        """
        for v in self.versions:
            if v.version == version:
                return v
        known = ", ".join(str(v.version) for v in self.versions)
        raise StateError(f"There is no head version {version!r}; the versions are {known}.")
