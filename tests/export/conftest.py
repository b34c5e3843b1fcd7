"""Real backbones and data for the exporter's tests, each built once per session.

EfficientNet-Lite0 runs at about 50 images/s on 2 cores, so the image sets are
a few per class: enough to train a head and see every code path, small enough
for CI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeft.config import ExportConfig
from edgeft.datasets import fashion_mnist, minilm_path


@pytest.fixture(scope="session")
def fashion() -> dict[str, tuple[np.ndarray, list[str]]]:
    """Fashion-MNIST: server (4 per class, 28x28 grey uint8) and test (3 per class)."""
    return {"server": fashion_mnist("train", per_class=4), "test": fashion_mnist("test", per_class=3)}


@pytest.fixture(scope="session")
def effnet_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EfficientNet-Lite0's pooled features as a plain FP32 ONNX file (no edgeft bundle)."""
    import torch

    from export.vision import VISION_MODELS, export_torch_backbone

    path = tmp_path_factory.mktemp("onnx") / "efficientnet-lite0.onnx"
    export_torch_backbone(VISION_MODELS["efficientnet-lite0"].build(), torch.zeros(1, 3, 224, 224), path)
    return path


@pytest.fixture(scope="session")
def effnet_bundle(tmp_path_factory: pytest.TempPathFactory, fashion) -> Path:
    """An INT8 EfficientNet-Lite0 bundle exported from torch, head trained on Fashion-MNIST. Do not modify."""
    import torch

    from export import export_model
    from export.vision import VISION_MODELS

    model = VISION_MODELS["efficientnet-lite0"]
    path = tmp_path_factory.mktemp("bundles") / "effnet-fashion"
    images, labels = fashion["server"]
    config = ExportConfig(name="effnet-fashion", license="apache-2.0", accept_quality_loss=True)
    export_model(model.build(), torch.zeros(1, 3, 224, 224), path, images=images, labels=labels,
                 preprocessing=model.preprocessing, config=config)
    return path


@pytest.fixture(scope="session")
def minilm_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """MiniLM as optimum exports it (outputs token_embeddings and sentence_embedding), and its tokenizer.json."""
    from export.text import export_text_backbone

    return export_text_backbone(minilm_path(), tmp_path_factory.mktemp("minilm") / "onnx")


@pytest.fixture(autouse=True)
def _truncation_is_expected():
    """BBC articles run past the token limits used here; the truncation warning is expected."""
    import warnings

    from device_runtime import TruncationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        yield
