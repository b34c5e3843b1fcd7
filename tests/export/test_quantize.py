"""INT8 backbones: size, latency and FP32-vs-INT8 agreement are measured, and a loss is guarded."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from device_runtime import Personalizer
from device_runtime.acceptance import validation_split
from edgeft import layout
from edgeft.bundle import Bundle, write_manifest
from edgeft.cli import main
from edgeft.config import ExportConfig, TrainConfig
from edgeft.errors import ConfigError, ExportError
from example_data import minilm_path
from export import BackboneOptions, ServerData, export_bundle
from export.measure import check_quality_loss, disagreement_bound, examples_needed
from export.onnx_file import quantization_evidence
from export.precision import CONFIDENCE

MEASURED = {
    "backbone_bytes_fp32",
    "backbone_bytes_int8",
    "backbone_latency_ms_fp32",
    "backbone_latency_ms_int8",
    "validation_accuracy_fp32",
    "validation_accuracy_int8",
    "int8_identical_predictions",
    "int8_accuracy_loss",
}


def test_minilm_int8_dynamic_is_measured_against_fp32(minilm_bundle, minilm_onnx, bbc_splits, tmp_path):
    m = Bundle.load(minilm_bundle).manifest
    assert m.backbone.precision == "int8"
    assert MEASURED <= set(m.metrics)
    assert m.metrics["backbone_bytes_int8"] < m.metrics["backbone_bytes_fp32"] / 3
    assert m.metrics["backbone_bytes"] == m.metrics["backbone_bytes_int8"]
    assert m.metrics["validation_examples"] == 5  # 20% of 4 per class, at least one per class
    assert m.metrics["parity_max_abs_diff"] < 1e-4  # the ONNX graph vs the torch model, before quantization
    assert m.metrics["quantization"] == {"mode": "int8-dynamic", "requested": "int8-dynamic", "reason": "int8-dynamic, as asked"}
    # The agreement recorded is the shipped head's on the INT8 and on the FP32 backbone, over every server example.
    texts, _ = bbc_splits["server"]
    fp32 = _with_backbone(minilm_bundle, minilm_onnx[0], tmp_path / "fp32")  # the exporter's FP32 graph: same export
    agreement = np.mean(Personalizer.from_bundle(minilm_bundle).predict(texts) == Personalizer.from_bundle(fp32).predict(texts))
    assert m.metrics["int8_agreement_examples"] == len(texts) == 20
    assert m.metrics["int8_identical_predictions"] == pytest.approx(agreement)


def _with_backbone(bundle: Path, backbone: Path, target: Path) -> Path:
    """A copy of ``bundle`` (its trained head) on another FP32 ``backbone`` file."""
    shutil.copytree(bundle, target)
    shutil.copyfile(backbone, target / layout.BACKBONE)
    manifest = Bundle.load(bundle).manifest
    write_manifest(target, dataclasses.replace(manifest, backbone=dataclasses.replace(manifest.backbone, precision="fp32")))
    return target


def test_the_int8_accuracy_recorded_is_the_shipped_int8_bundles_own(effnet_bundle, fashion):
    # EfficientNet-Lite0 is the backbone whose INT8 predictions differ from FP32's (docs/export.md).
    images, labels = fashion["server"]
    _, val = validation_split(labels, ExportConfig().validation_fraction, TrainConfig().seed)  # the exporter's split
    shipped = Personalizer.from_bundle(effnet_bundle)  # its INT8 backbone, nothing cached
    accuracy = shipped.score(images[val], [labels[i] for i in val])
    assert Bundle.load(effnet_bundle).manifest.metrics["validation_accuracy_int8"] == pytest.approx(accuracy)


def test_int8_static_calibrates_on_server_data(bbc_splits, tmp_path):
    texts, labels = bbc_splits["server"]
    config = ExportConfig(quantization="int8-static", accept_quality_loss=True)
    manifest = export_bundle(minilm_path(), tmp_path / "b", data=ServerData(texts, labels), config=config)
    assert manifest.backbone.precision == "int8"
    assert MEASURED <= set(manifest.metrics)
    test_texts, _test_labels = bbc_splits["test"]
    assert Personalizer.from_bundle(tmp_path / "b").predict(test_texts[:5]).shape == (5,)


def test_int8_static_without_server_data_is_refused(tmp_path):
    with pytest.raises(ExportError, match="int8-static calibrates activation ranges on server data"):
        export_bundle(
            minilm_path(), tmp_path / "b", data=ServerData(label_set=["a", "b"]), config=ExportConfig(quantization="int8-static")
        )
    assert not (tmp_path / "b").exists()


def test_an_int8_quality_loss_over_the_threshold_stops_the_export_unless_accepted():
    # How much a real INT8 backbone loses on a 10-image validation split is chance; the guard's rule is not.
    with pytest.raises(ExportError, match=r"INT8 backbone loses 20.0 accuracy points .*--accept-quality-loss"):
        check_quality_loss(0.9, 0.7, 0.8, 10, ExportConfig())
    check_quality_loss(0.9, 0.7, 0.8, 10, ExportConfig(quantization="int8-dynamic", accept_quality_loss=True))
    check_quality_loss(0.9, 0.7, 0.8, 10, ExportConfig(max_quality_loss=0.25))
    check_quality_loss(0.7, 0.9, 0.8, 10, ExportConfig())


def test_a_loss_of_exactly_the_threshold_passes_the_guard():
    check_quality_loss(0.95, 0.94, 0.99, 100, ExportConfig())  # one point lost, one allowed


def test_the_bound_on_what_int8_loses_is_clopper_pearson_and_shrinks_with_the_count():
    assert disagreement_bound(0, 20, 0.95) == pytest.approx(1 - 0.05 ** (1 / 20))  # 13.9 points
    assert disagreement_bound(1, 20, 0.95) == pytest.approx(0.2161, abs=1e-4)  # the exact binomial bound
    assert disagreement_bound(0, 300, 0.95) < 0.01 < disagreement_bound(0, 298, 0.95)
    assert examples_needed(0.01, 0.95) == 299
    assert disagreement_bound(3, 3, 0.95) == 1.0 and examples_needed(0.0, 0.95) is None


def _choice(record: dict, margin: float) -> str:
    """What auto must choose, from the figures it recorded: the smallest INT8 within the margin, else FP32 ('none')."""
    fits = {
        name: c["backbone_bytes"]
        for name, c in record["candidates"].items()
        if "error" not in c and disagreement_bound(c["examples"] - c["agreeing"], c["examples"], CONFIDENCE) <= margin
    }
    return min(fits, key=fits.get, default="none")


def _ops(model: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(model), load_external_data=False).graph.node}


def test_auto_ships_minilm_int8_where_the_server_examples_show_it_within_the_margin(minilm_onnx, bbc_splits, tmp_path):
    # 20 agreeing examples bound INT8's loss at 13.9 points, so a 15-point margin lets them prove it;
    # at the default one point auto needs 299 (docs/export.md).
    model, tokenizer = minilm_onnx
    texts, labels = bbc_splits["server"]
    m = export_bundle(
        model,
        tmp_path / "b",
        data=ServerData(texts, labels),
        config=ExportConfig(max_quality_loss=0.15),
        backbone=BackboneOptions(feature_output="sentence_embedding", tokenizer=tokenizer),
    )
    record = m.metrics["quantization"]
    assert record["requested"] == "auto" and set(record["candidates"]) == {"int8-dynamic", "int8-static"}
    assert all(c["examples"] == len(texts) for c in record["candidates"].values())
    assert record["mode"] == _choice(record, 0.15) != "none"
    chosen = record["candidates"][record["mode"]]
    assert m.backbone.precision == "int8"
    assert m.metrics["backbone_bytes"] == chosen["backbone_bytes"] == (tmp_path / "b" / layout.BACKBONE).stat().st_size
    assert m.metrics["int8_identical_predictions"] == chosen["agreeing"] / len(texts)
    expected_op = "DynamicQuantizeLinear" if record["mode"] == "int8-dynamic" else "QuantizeLinear"
    assert expected_op in _ops(tmp_path / "b" / layout.BACKBONE)
    assert f"{record['mode']} is the smallest backbone within the margin" in record["reason"]
    assert f"agreed with FP32 on {chosen['agreeing']}/{len(texts)} server examples" in record["reason"]


def test_auto_on_efficientnet_ships_what_it_measured_and_says_why(effnet_onnx, fashion, tmp_path, capsys):
    images, labels = fashion["server"]
    np.savez(tmp_path / "data.npz", X=images, y=np.array(labels))
    code = main(
        [
            "export",
            "--model",
            str(effnet_onnx),
            "--feature-output",
            "features",
            "--train-data",
            str(tmp_path / "data.npz"),
            "--max-quality-loss",
            "20",
            "--output",
            str(tmp_path / "b"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    m = Bundle.load(tmp_path / "b").manifest
    record = m.metrics["quantization"]
    assert f"precision (--quantize auto): {record['reason']}" in capsys.readouterr().out
    assert all(c["examples"] == len(images) for c in record["candidates"].values() if "error" not in c)
    assert record["mode"] == _choice(record, 0.20)
    if record["mode"] == "none":
        assert m.backbone.precision == "fp32" and m.metrics["backbone_bytes"] == m.metrics["backbone_bytes_fp32"]
        assert "no INT8 backbone is shown to be within the margin" in record["reason"]
    else:
        assert m.backbone.precision == "int8"
        assert m.metrics["backbone_bytes"] == record["candidates"][record["mode"]]["backbone_bytes"]


def test_auto_without_server_examples_ships_fp32_and_says_what_it_lacked(minilm_onnx, tmp_path):
    model, tokenizer = minilm_onnx
    m = export_bundle(
        model,
        tmp_path / "b",
        data=ServerData(label_set=["a", "b"]),
        backbone=BackboneOptions(feature_output="sentence_embedding", tokenizer=tokenizer),
    )
    assert m.backbone.precision == "fp32" and m.metrics["quantization"]["mode"] == "none"
    assert "no server examples to measure INT8 against FP32 on" in m.metrics["quantization"]["reason"]


def test_auto_chooses_by_the_margin_so_accepting_a_loss_is_for_a_named_mode():
    with pytest.raises(ConfigError, match="quantization 'auto' chooses by max_quality_loss itself"):
        ExportConfig(accept_quality_loss=True)


@pytest.fixture(scope="module")
def int8_minilm(minilm_onnx, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM as a new user may bring it: an ONNX file quantized already (ORT's dynamic INT8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = tmp_path_factory.mktemp("int8") / "minilm-int8.onnx"
    quantize_dynamic(minilm_onnx[0], path, weight_type=QuantType.QInt8)
    return path


def test_a_quantized_graph_is_recognised_and_a_float_one_is_not(int8_minilm, minilm_onnx):
    evidence = quantization_evidence(int8_minilm)
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= set(evidence)
    assert any(e.endswith("int8/uint8 initializers") for e in evidence)
    assert quantization_evidence(minilm_onnx[0]) == []


def test_a_pre_quantized_backbone_ships_as_given_and_is_recorded_as_such(int8_minilm, minilm_onnx, bbc_splits, tmp_path):
    texts, labels = bbc_splits["server"]
    m = export_bundle(
        int8_minilm,
        tmp_path / "b",
        data=ServerData(texts, labels),
        backbone=BackboneOptions(feature_output="sentence_embedding", tokenizer=minilm_onnx[1]),
    )
    assert m.backbone.precision == "int8"
    assert m.metrics["quantization"]["mode"] == "pre-quantized"
    assert f"quantized already ({', '.join(quantization_evidence(int8_minilm))})" in m.metrics["quantization"]["reason"]
    # Nothing compares "FP32" with "INT8" on what are two INT8 graphs.
    assert not {"backbone_bytes_fp32", "backbone_bytes_int8", "int8_identical_predictions"} & set(m.metrics)
    assert abs(m.metrics["backbone_bytes"] - int8_minilm.stat().st_size) < 0.01 * int8_minilm.stat().st_size
    assert "MatMulInteger" in _ops(tmp_path / "b" / layout.BACKBONE)


def test_quantizing_a_pre_quantized_backbone_again_is_refused(int8_minilm, minilm_onnx, tmp_path):
    with pytest.raises(ExportError, match=r"is quantized already .* Export it with --quantize auto or none"):
        export_bundle(
            int8_minilm,
            tmp_path / "b",
            data=ServerData(label_set=["a", "b"]),
            config=ExportConfig(quantization="int8-dynamic"),
            backbone=BackboneOptions(feature_output="sentence_embedding", tokenizer=minilm_onnx[1]),
        )
    assert not (tmp_path / "b").exists()
