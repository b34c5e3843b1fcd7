"""Fixtures for the device runtime's tests: personalizers over the session's MiniLM bundle.

Every personalizer made here shares one persistent feature cache, so the
backbone embeds each BBC text once per test session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from device_runtime import Personalizer
from edgeft.config import RuntimeConfig


@pytest.fixture(scope="session")
def feature_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("features")


@pytest.fixture
def make_personalizer(minilm_bundle: Path, feature_cache_dir: Path):
    """Build a Personalizer on the session bundle; keyword arguments go to RuntimeConfig."""

    def make(config=None, **runtime) -> Personalizer:
        runtime.setdefault("cache_dir", str(feature_cache_dir))
        return Personalizer.from_bundle(minilm_bundle, config=config, runtime=RuntimeConfig(**runtime))

    return make


@pytest.fixture
def user(bbc_splits):
    return bbc_splits["user"]


@pytest.fixture
def test_split(bbc_splits):
    return bbc_splits["test"]
