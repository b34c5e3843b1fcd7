"""Fixtures of the device-only suite: the bundles and reference results the main environment wrote.

This suite runs only through tests/test_device_only.py (``make test``), which
sets EDGEFT_DEVICE_REFERENCE; run by hand without it, it fails and says so.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    folder = os.environ.get("EDGEFT_DEVICE_REFERENCE")
    if not folder:
        pytest.fail("EDGEFT_DEVICE_REFERENCE is not set: run this suite through tests/test_device_only.py (make test).")
    return Path(folder)


@pytest.fixture(scope="session")
def reference(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "reference.json").read_text())


@pytest.fixture(scope="session")
def images(reference_dir: Path) -> np.ndarray:
    return np.load(reference_dir / "images.npy")


@pytest.fixture
def minilm_bundle(reference: dict, tmp_path: Path) -> Path:
    """A private copy of the main environment's (INT8) MiniLM bundle."""
    return Path(shutil.copytree(reference["bundles"]["int8"], tmp_path / "minilm-bbc"))
