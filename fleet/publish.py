"""A fleet's global head becomes a bundle version: same backbone and artifacts, new head, new manifest."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime import Personalizer
from edgeft import atomic, layout
from edgeft.bundle import Bundle, write_manifest
from edgeft.registry.paths import check_name

# Files the new version writes itself; every other file of the source bundle is copied unchanged.
_REPLACED = {layout.MANIFEST, layout.CHECKPOINT, layout.PARAMETERS, layout.FLEET}


def write_fleet_bundle(
    personalizer: Personalizer,
    head: dict[str, np.ndarray],
    output: str | os.PathLike,
    version: str,
    provenance: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Bundle:
    """Write ``personalizer``'s bundle again as ``version`` with ``head`` shipped, atomically.

    The backbone, tokenizer, training artifacts and reference statistics are copied; the head
    checkpoint and ``head/parameters.npz`` hold ``head``; ``fleet.json`` holds ``provenance``;
    the manifest gets the new version, the head marked trained, the fleet's figures in its metrics
    and every file's checksum. The folder appears only once it loads and verifies.

    Args:
        personalizer: an ORT-engine personalizer of the source bundle (it writes the ORT checkpoint).
        head: the global head's parameters.
        output: the new bundle folder.
        version: the new version's name (letters, digits, '.', '_', '+', '-').
        provenance: what made the head (rounds, devices, examples, aggregation, privacy).
        overwrite: replace an existing folder at ``output``.

    Returns:
        The written bundle, loaded and verified.

    Raises:
        InvalidRequestError: ``version`` is not a valid version name.
        DataError: ``head`` does not fit the bundle's head.
        StateError: the personalizer does not run the ORT engine.
    """
    source = personalizer.bundle
    check_name(version, "version")
    personalizer.set_head(head, source=f"fleet head for version {version}")
    with atomic.atomic_dir(output, overwrite=overwrite) as tmp:
        for name in source.manifest.files:
            if name not in _REPLACED:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source.file(name), tmp / name)
        (tmp / layout.CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
        personalizer.save_head_checkpoint(tmp / layout.CHECKPOINT)
        with open(tmp / layout.PARAMETERS, "wb") as f:
            np.savez(f, **personalizer.head_parameters())
        atomic.write_json(tmp / layout.FLEET, provenance)
        m = source.manifest
        summary = {f"fleet_{k}": provenance[k] for k in ("rounds", "clients", "examples") if k in provenance}
        manifest = dataclasses.replace(
            m,
            version=version,
            head=dataclasses.replace(m.head, trained=True),
            metrics={**m.metrics, **summary},
        )
        write_manifest(tmp, manifest)
        Bundle.load(tmp)
    return Bundle.load(Path(output))
