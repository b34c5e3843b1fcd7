"""Head versions: every accepted head, with its metrics; version 0 is the shipped head.

Retention: a history keeps the shipped head (0), the current one, the pinned
ones and the last ``keep_last`` (default :data:`KEEP_VERSIONS`); older versions
are dropped when a new one is added, so memory, disk and save time stay bounded
however long a device personalizes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np

from edgeft.errors import StateError

KEEP_VERSIONS = 10  # the last ten accepted heads: rollback room for weeks of daily personalization, a few MB at most


@dataclasses.dataclass
class HeadVersion:
    """One head the user had: its parameters and what it scored when accepted."""

    version: int
    parameters: dict[str, np.ndarray]
    metrics: dict[str, Any]
    created: str = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    # The file and sha256 a save wrote the parameters to (or a load read them from): later saves reuse that file.
    saved: dict[str, str] | None = None

    def summary(self) -> dict[str, Any]:
        """The version's record without its parameters (what state.json and reports show)."""
        return {"version": self.version, "created": self.created, "metrics": self.metrics}


class VersionHistory:
    """The versions of one personalized head and which one is current.

    Args:
        shipped: the parameters of the bundle's head, version 0.
        created: when the bundle was exported (version 0's creation time).
        keep_last: how many of the latest versions retention keeps (besides 0, the current and the pinned ones).
    """

    def __init__(self, shipped: dict[str, np.ndarray], created: str, keep_last: int = KEEP_VERSIONS) -> None:
        self.versions = [HeadVersion(0, shipped, {"source": "shipped with the bundle"}, created)]
        self.current = 0
        self.keep_last = keep_last
        self.pinned: set[int] = set()

    def add(self, parameters: dict[str, np.ndarray], metrics: dict[str, Any]) -> HeadVersion:
        """Record an accepted head as the next version and make it current; retention drops the oldest unpinned ones."""
        version = HeadVersion(self.versions[-1].version + 1, parameters, metrics)
        self.versions.append(version)
        self.current = version.version
        self._retain()
        return version

    def restore(
        self, entries: list[dict[str, Any]], parameters: dict[int, dict[str, np.ndarray]], current: int, pinned: list[int]
    ) -> None:
        """Take back the versions a state saved (``entries`` after version 0, as state.json lists them)."""
        for entry in entries:
            saved = {"file": entry["file"], "sha256": entry["sha256"]}
            self.versions.append(
                HeadVersion(entry["version"], parameters[entry["version"]], entry["metrics"], entry["created"], saved)
            )
        self.current = current
        self.pinned = {v for v in pinned if any(h.version == v for h in self.versions)}
        self._retain()

    def pin(self, version: int) -> None:
        """Keep ``version`` whatever retention would drop (raises StateError for an unknown version)."""
        self.pinned.add(self.get(version).version)

    def unpin(self, version: int) -> None:
        """Let retention drop ``version`` again once it is old enough."""
        self.pinned.discard(self.get(version).version)

    def _retain(self) -> None:
        latest = {v.version for v in self.versions[-self.keep_last :]} if self.keep_last else set()
        keep = {0, self.current, *self.pinned, *latest}
        self.versions = [v for v in self.versions if v.version in keep]

    def get(self, version: int) -> HeadVersion:
        """The version numbered ``version``.

        Raises:
            StateError: no such version, or ``version`` is not an integer.
        """
        if isinstance(version, bool) or not isinstance(version, (int, np.integer)):
            raise StateError(f"A head version is an integer (0 is the shipped head), got {version!r} ({type(version).__name__}).")
        for v in self.versions:
            if v.version == version:
                return v
        known = ", ".join(str(v.version) for v in self.versions)
        raise StateError(f"There is no head version {version!r}; the versions are {known}.")
