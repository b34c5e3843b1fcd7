"""Plain ONNX backbones for the exporter's tests, each built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from example_data import minilm_path


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


@pytest.fixture(scope="session")
def step_and_ort_agree():
    """Checks that a bundle's step graph and its ORT training artifacts take the same steps: the same losses, and the
    same parameters after them. Returns the largest loss and parameter differences."""
    import numpy as np

    from device_runtime.engines import open_engine
    from edgeft.bundle import Bundle
    from edgeft.config import Engine

    def check(bundle: Path, features, targets, steps: int = 3, lr: float = 1e-3, loss_atol: float = 1e-5, atol: float = 1e-5):
        loaded = Bundle.load(bundle)
        engines = {kind: open_engine(kind, loaded) for kind in (Engine.ORT, Engine.STEP)}
        rows = min(8, loaded.manifest.head.step_batch)
        losses = {kind: [] for kind in engines}
        for kind, engine in engines.items():
            engine.l2sp = 0.1  # through the anchors, as a device sets it
            for i in range(steps):
                batch = np.arange(i * rows, (i + 1) * rows) % len(targets)
                losses[kind].append(engine.train_step(features[batch], targets[batch], lr))
        np.testing.assert_allclose(losses[Engine.STEP], losses[Engine.ORT], atol=loss_atol)
        ort_params, step_params = engines[Engine.ORT].parameters(), engines[Engine.STEP].parameters()
        assert set(step_params) == set(loaded.manifest.head.trainable)
        for name, value in step_params.items():
            np.testing.assert_allclose(value, ort_params[name], atol=atol, err_msg=name)
        return losses

    return check


@pytest.fixture(autouse=True)
def _truncation_is_expected():
    """BBC articles run past the token limits used here; the truncation warning is expected."""
    import warnings

    from device_runtime import TruncationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        yield
