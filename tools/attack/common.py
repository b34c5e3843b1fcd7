"""What every category of the attack shares: the tally, outcome classification, bundles, a served app."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeft.errors import EdgeftError
from tests.serve.conftest import running as serving  # the suite's uvicorn-in-a-thread helper, a free port each

__all__ = ["Tally", "copy_bundle", "rehash", "serving"]


@dataclasses.dataclass
class Tally:
    """One category's outcome counts; ``failures`` keeps a few examples of each bad outcome."""

    name: str
    kinds: int = 0
    typed: int = 0  # refused with an edgeft error (or a documented 4xx, or rc 1/2 with one line)
    accepted: int = 0  # answered without an error
    untyped: int = 0  # a raw exception, a traceback or a 5xx
    bypasses: int = 0  # a tampered bundle that loaded although a trust policy was set
    failures: list[str] = dataclasses.field(default_factory=list)
    accepted_kinds: list[str] = dataclasses.field(default_factory=list)  # the first few that ended without an error

    def fail(self, kind: str, what: str, counter: str = "untyped") -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        if len(self.failures) < 40:
            self.failures.append(f"{kind}: {what}"[:300])

    def call(self, kind: str, action: Callable[[], Any], *, must_refuse: bool = False) -> None:
        """Run ``action``: a typed error counts as typed, success as accepted (a bypass where it ``must_refuse``),
        anything else as untyped."""
        self.kinds += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                action()
        except EdgeftError:
            self.typed += 1
        except Exception as e:  # noqa: BLE001 - the harness counts what escapes
            self.fail(kind, f"{type(e).__name__}: {e}")
        else:
            if must_refuse:
                self.fail(kind, "accepted although it must be refused", "bypasses")
            else:
                self.accepted += 1
                if len(self.accepted_kinds) < 20:
                    self.accepted_kinds.append(kind)


def copy_bundle(source: Path, into: Path) -> Path:
    shutil.rmtree(into, ignore_errors=True)
    return Path(shutil.copytree(source, into))


def rehash(folder: Path) -> None:
    """Write the checksums of the folder's files into its manifest, as an attacker who rewrote a file would."""
    from edgeft.bundle import file_sha256

    manifest = json.loads((folder / "manifest.json").read_text())
    for name in manifest["files"]:
        file = folder / name
        if file.is_file():
            manifest["files"][name] = {"size": file.stat().st_size, "sha256": file_sha256(file)}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
