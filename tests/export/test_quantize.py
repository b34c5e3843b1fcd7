"""INT8 backbones: size, latency and FP32-vs-INT8 agreement are measured, and a loss is guarded."""

from __future__ import annotations

import pytest
import torch

from device_runtime import Personalizer
from edgeft.bundle import Bundle
from edgeft.config import ExportConfig
from edgeft.datasets import minilm_path
from edgeft.errors import ExportError
from export import export_model, export_text_model
from export.vision import VISION_MODELS

MEASURED = {
    "backbone_bytes_fp32", "backbone_bytes_int8", "backbone_latency_ms_fp32", "backbone_latency_ms_int8",
    "validation_accuracy_fp32", "validation_accuracy_int8", "int8_identical_predictions", "int8_accuracy_loss",
}


def test_minilm_int8_dynamic_is_measured_against_fp32(minilm_bundle):
    m = Bundle.load(minilm_bundle).manifest
    assert m.backbone.precision == "int8"
    assert MEASURED <= set(m.metrics)
    assert m.metrics["backbone_bytes_int8"] < m.metrics["backbone_bytes_fp32"] / 3
    assert m.metrics["backbone_bytes"] == m.metrics["backbone_bytes_int8"]
    assert 0 <= m.metrics["int8_identical_predictions"] <= 1
    assert m.metrics["validation_examples"] == 5  # 20% of 4 per class, at least one per class
    assert m.metrics["parity_max_abs_diff"] < 1e-4  # the ONNX graph vs the torch model, before quantization


def test_int8_static_calibrates_on_server_data(bbc_splits, tmp_path):
    texts, labels = bbc_splits["server"]
    config = ExportConfig(quantization="int8-static", accept_quality_loss=True)
    manifest = export_text_model(minilm_path(), tmp_path / "b", texts=texts, labels=labels, config=config)
    assert manifest.backbone.precision == "int8"
    assert MEASURED <= set(manifest.metrics)
    test_texts, test_labels = bbc_splits["test"]
    assert Personalizer.from_bundle(tmp_path / "b").predict(test_texts[:5]).shape == (5,)


def test_int8_static_without_server_data_is_refused(tmp_path):
    with pytest.raises(ExportError, match="int8-static calibrates activation ranges on server data"):
        export_text_model(minilm_path(), tmp_path / "b", label_set=["a", "b"],
                          config=ExportConfig(quantization="int8-static"))
    assert not (tmp_path / "b").exists()


def test_an_int8_quality_loss_stops_the_export_unless_accepted(effnet_bundle, fashion, tmp_path):
    # The session's EfficientNet bundle was exported with accept_quality_loss: INT8 lost accuracy there.
    measured = Bundle.load(effnet_bundle).manifest.metrics
    assert measured["int8_accuracy_loss"] > 0.01
    images, labels = fashion["server"]
    model = VISION_MODELS["efficientnet-lite0"]
    with pytest.raises(ExportError, match=r"INT8 backbone loses .* accuracy points .*--accept-quality-loss"):
        export_model(model.build(), torch.zeros(1, 3, 224, 224), tmp_path / "b", images=images, labels=labels,
                     preprocessing=model.preprocessing)
    assert list(tmp_path.iterdir()) == []
