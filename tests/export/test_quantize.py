"""INT8 backbones: size, latency and FP32-vs-INT8 agreement are measured, and a loss is guarded."""

from __future__ import annotations

import pytest

from device_runtime import Personalizer
from edgeft.bundle import Bundle
from edgeft.config import ExportConfig, TrainConfig
from edgeft.datasets import minilm_path
from edgeft.errors import ExportError
from export import export_text_model
from export.measure import check_quality_loss, split_indices

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


def test_the_int8_accuracy_recorded_is_the_shipped_int8_bundles_own(effnet_bundle, fashion):
    # EfficientNet-Lite0 is the backbone whose INT8 predictions differ from FP32's (docs/export.md).
    images, labels = fashion["server"]
    _, val = split_indices(labels, ExportConfig().validation_fraction, TrainConfig().seed)  # the exporter's split
    shipped = Personalizer.from_bundle(effnet_bundle)  # its INT8 backbone, nothing cached
    accuracy = shipped.score(images[val], [labels[i] for i in val])
    assert Bundle.load(effnet_bundle).manifest.metrics["validation_accuracy_int8"] == pytest.approx(accuracy)


def test_int8_static_calibrates_on_server_data(bbc_splits, tmp_path):
    texts, labels = bbc_splits["server"]
    config = ExportConfig(quantization="int8-static", accept_quality_loss=True)
    manifest = export_text_model(minilm_path(), tmp_path / "b", texts=texts, labels=labels, config=config)
    assert manifest.backbone.precision == "int8"
    assert MEASURED <= set(manifest.metrics)
    test_texts, _test_labels = bbc_splits["test"]
    assert Personalizer.from_bundle(tmp_path / "b").predict(test_texts[:5]).shape == (5,)


def test_int8_static_without_server_data_is_refused(tmp_path):
    with pytest.raises(ExportError, match="int8-static calibrates activation ranges on server data"):
        export_text_model(minilm_path(), tmp_path / "b", label_set=["a", "b"],
                          config=ExportConfig(quantization="int8-static"))
    assert not (tmp_path / "b").exists()


def test_an_int8_quality_loss_over_the_threshold_stops_the_export_unless_accepted():
    # How much a real INT8 backbone loses on a 10-image validation split is chance; the guard's rule is not.
    with pytest.raises(ExportError, match=r"INT8 backbone loses 20.0 accuracy points .*--accept-quality-loss"):
        check_quality_loss(0.9, 0.7, 0.8, 10, ExportConfig())
    check_quality_loss(0.9, 0.7, 0.8, 10, ExportConfig(accept_quality_loss=True))
    check_quality_loss(0.9, 0.7, 0.8, 10, ExportConfig(max_quality_loss=0.25))
    check_quality_loss(0.7, 0.9, 0.8, 10, ExportConfig())


def test_a_loss_of_exactly_the_threshold_passes_the_guard():
    check_quality_loss(0.95, 0.94, 0.99, 100, ExportConfig())  # one point lost, one allowed
