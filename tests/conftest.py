"""Shared fixtures: one real MiniLM bundle per test session, and BBC News splits.

Exporting the packaged all-MiniLM-L6-v2 takes a few seconds, so it happens
once; tests that change a bundle copy it first (``bundle_copy``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgeft.config import ExportConfig
from edgeft.datasets import bbc_news, minilm_path, split_per_class


@pytest.fixture(scope="session")
def bbc_splits() -> dict[str, tuple[list[str], list[str]]]:
    """Disjoint per-class splits: server (4/class), user (12/class), test (30/class)."""
    texts, labels = bbc_news()
    server, user, test = split_per_class(texts, labels, [4, 12, 30], seed=0)
    return {"server": server, "user": user, "test": test}


@pytest.fixture(scope="session")
def minilm_bundle(tmp_path_factory: pytest.TempPathFactory, bbc_splits) -> Path:
    """A real INT8 MiniLM bundle whose head was trained on the server split. Do not modify."""
    from export import export_text_model

    path = tmp_path_factory.mktemp("bundles") / "minilm-bbc"
    texts, labels = bbc_splits["server"]
    config = ExportConfig(name="minilm-bbc", base_model="sentence-transformers/all-MiniLM-L6-v2", license="apache-2.0")
    export_text_model(minilm_path(), path, texts=texts, labels=labels, config=config)
    return path


@pytest.fixture
def bundle_copy(minilm_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the MiniLM bundle that a test may alter."""
    return Path(shutil.copytree(minilm_bundle, tmp_path / "bundle"))
