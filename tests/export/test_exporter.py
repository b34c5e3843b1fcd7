"""The exporter refuses what it cannot ship, and never leaves half a bundle behind."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from edgeft import layout
from edgeft.config import ExportConfig, ImagePreprocessing
from edgeft.errors import DataError, ExportError
from example_data import minilm_path
from export import ServerData, export_bundle


def test_int8_backbone_is_quantized_and_the_head_is_not(minilm_bundle: Path) -> None:
    backbone_ops = {n.op_type for n in onnx.load(str(minilm_bundle / layout.BACKBONE)).graph.node}
    head_ops = {n.op_type for n in onnx.load(str(minilm_bundle / layout.EVAL_MODEL)).graph.node}
    assert "MatMulInteger" in backbone_ops or "DynamicQuantizeMatMul" in backbone_ops
    assert not {op for op in head_ops if "Integer" in op or "Quantize" in op}


def test_folder_that_is_not_a_model_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not a Hugging Face model folder"):
        export_bundle(tmp_path, tmp_path / "out", data=ServerData(label_set=["a", "b"]))
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))


def test_a_single_label_is_not_a_classifier(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="at least 2 labels"):
        export_bundle(minilm_path(), tmp_path / "out", data=ServerData(["x"], ["only"]))


def test_label_outside_the_given_label_set_is_refused_before_export(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'sport' are not in the bundle's label set"):
        export_bundle(minilm_path(), tmp_path / "out", data=ServerData(["x", "y"], ["tech", "sport"], ["tech", "sports"]))
    assert not (tmp_path / "out").exists()


def test_existing_bundle_is_not_overwritten_by_default(minilm_bundle: Path) -> None:
    with pytest.raises(ExportError, match="already exists"):
        export_bundle(minilm_path(), minilm_bundle, data=ServerData(label_set=["a", "b"]))


def test_server_metrics_are_recorded(minilm_bundle: Path) -> None:
    from edgeft.bundle import Bundle

    metrics = Bundle.load(minilm_bundle).manifest.metrics
    assert metrics["server_examples"] == 20
    assert metrics["backbone_bytes"] < metrics["backbone_bytes_fp32"] / 3


def test_the_older_entry_points_export_through_export_bundle(tmp_path: Path) -> None:
    import torch

    from export import export_model, export_onnx_model

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    config = ExportConfig(quantization="none")
    small = ImagePreprocessing(size=(16, 16))
    torch_made = export_model(
        module, torch.zeros(1, 3, 16, 16), tmp_path / "torch", label_set=["a", "b"], preprocessing=small, config=config
    )
    onnx_made = export_onnx_model(
        tmp_path / "torch" / "backbone.onnx",
        tmp_path / "onnx",
        feature_output="features",
        label_set=["a", "b"],
        preprocessing=small,
        config=config,
    )
    assert torch_made.input == onnx_made.input and torch_made.backbone.feature_size == onnx_made.backbone.feature_size == 4
    assert (torch_made.base_model["source"], onnx_made.base_model["name"]) == ("torch module", "backbone")
    assert onnx_made.base_model["source"] == "backbone.onnx", "the manifest names the file, never a workstation's path"
