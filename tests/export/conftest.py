"""Plain ONNX backbones for the exporter's tests, each built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeft.datasets import minilm_path


@pytest.fixture(scope="session")
def effnet_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EfficientNet-Lite0's pooled features as a plain FP32 ONNX file (no edgeft bundle)."""
    import torch

    from export.vision import VISION_MODELS, export_torch_backbone

    path = tmp_path_factory.mktemp("onnx") / "efficientnet-lite0.onnx"
    export_torch_backbone(VISION_MODELS["efficientnet-lite0"].build(), torch.zeros(1, 3, 224, 224), path)
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
