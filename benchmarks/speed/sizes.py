"""Sizes on disk: the bundles, and what a device must install with and without torch.

Install sizes come from this environment's installed distributions: the
device set is the transitive closure of edgeft's base dependencies (no
extras), read with ``importlib.metadata``; each distribution's size is the sum
of the files its RECORD lists.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from benchmarks import harness


def distribution_bytes(name: str) -> int:
    """Bytes of every file that distribution ``name`` installed."""
    dist = metadata.distribution(name)
    return sum(p.stat().st_size for f in dist.files or [] if (p := Path(dist.locate_file(f))).is_file())


def closure(roots: list[str]) -> set[str]:
    """Normalized names of ``roots`` and everything they require (no extras), as installed here."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def install_sizes() -> dict[str, dict]:
    """Site-packages bytes of edgeft's device install, and of what the PyTorch alternative needs."""
    sets = {
        "edgeft (device-only)": closure(["edgeft"]) - {"edgeft"},  # its base requirements that apply here (markers)
        # The PyTorch alternative loads MiniLM with transformers and tokenizes with tokenizers.
        "pytorch (torch, transformers)": closure(["torch", "transformers", "tokenizers", "numpy"]),
    }
    return {
        name: {"bytes": sum(distribution_bytes(d) for d in dists), "distributions": sorted(dists)} for name, dists in sets.items()
    }


def bundle_sizes(cache: Path, bundles: dict[str, str]) -> dict[str, int]:
    """Bytes of each bundle folder, by precision."""
    return {precision: harness.folder_bytes(cache / name) for precision, name in bundles.items()}


def bundle_exports(cache: Path, names: tuple[str, ...]) -> dict[str, dict]:
    """Each bundle's export seconds (``harness.cached_bundle``'s, where it exported it) and bytes, by its folder in ``cache``."""
    seconds = {name: harness.export_seconds(cache / name) for name in names}
    return {name: {"seconds": s, "bytes": harness.folder_bytes(cache / name)} for name, s in seconds.items() if s is not None}
