"""What the side studies (``forgetting``, ``text_blocks``) do alike around their own runs.

Each writes its results folder (``docs/<study>`` in quick mode, where the docs link it) and keeps its
bundles and caches in a work folder; each result starts with the same header and ends as the same files.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path
from typing import Any


def folders(study: str, mode: str, out: Path | None) -> tuple[Path, Path]:
    """The results folder (``out``, else the mode's default) and the work folder, both created."""
    out = out or (Path("docs") / study if mode == "quick" else Path("benchmarks/results") / f"{study}-{mode}")
    work = Path("benchmarks/results") / f"{study}-{mode}-work"
    for folder in (out, work):
        folder.mkdir(parents=True, exist_ok=True)
    return out, work


def quiet() -> None:
    """No warnings about long texts (truncation is the point) or the benchmark's own unsigned bundles."""
    from device_runtime import TruncationWarning
    from edgeft.signing import UnsignedBundleWarning

    warnings.simplefilter("ignore", TruncationWarning)
    warnings.simplefilter("ignore", UnsignedBundleWarning)


def header(mode: str, config: Any) -> dict[str, Any]:
    """The start of every result: the mode, its settings, the machine and the date; data sets go under ``data_sets``."""
    from benchmarks.__main__ import machine

    return {
        "mode": mode,
        "config": dataclasses.asdict(config),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "data_sets": {},
    }


def save(results: dict[str, Any], out: Path, report: str) -> None:
    """``results.json`` and ``results.md`` into ``out``, and the report on stdout."""
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(report)
    print(report)
