"""Fused bundles (--device-trainable-blocks): the last backbone blocks train on the device with the head."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from device_runtime import Personalizer
from device_runtime.image import preprocess
from device_runtime.validation import check_images
from edgeft.bundle import Bundle
from edgeft.cli import main
from edgeft.config import FUSED_LR, ExportConfig, FineTuneConfig, RuntimeConfig
from edgeft.errors import ConfigError, ExportError
from export import BackboneOptions, FineTuning, ServerData, export_bundle
from export.step_graph_warning import StepGraphWarning
from export.vision import VISION_MODELS

TAIL_WEIGHT = "blocks.15._expand_conv.weight"  # EfficientNet-Lite0 has 16 blocks; N=1 trains the last


def _few(data: tuple[np.ndarray, list[str]], per_class: int, classes: int = 3) -> tuple[np.ndarray, list[str]]:
    """The first ``per_class`` images of the first ``classes`` labels: EfficientNet is slow on 2 cores."""
    images, labels = data
    keep = [i for label in sorted(set(labels))[:classes] for i in np.flatnonzero(np.asarray(labels) == label)[:per_class]]
    return images[keep], [labels[i] for i in keep]


@pytest.fixture(scope="module")
def fused_bundle(tmp_path_factory: pytest.TempPathFactory, fashion) -> Path:
    model = VISION_MODELS["efficientnet-lite0"]
    path = tmp_path_factory.mktemp("fused") / "effnet-fused"
    images, labels = _few(fashion["server"], 3)
    config = ExportConfig(name="effnet-fused", device_trainable_blocks=1, quantization="int8-dynamic", accept_quality_loss=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StepGraphWarning)  # its conv blocks' step graph exports
        export_bundle(model.build(), path, data=ServerData(images, labels), config=config)
    return path


def test_the_manifest_says_fused_the_backbone_is_int8_and_the_tail_fp32(fused_bundle):
    m = Bundle.load(fused_bundle).manifest
    assert m.head.backbone_blocks == 1
    assert m.backbone.intermediate_shape == [192, 7, 7]
    assert m.backbone.feature_size == m.head.in_features == 192 * 7 * 7
    assert m.backbone.precision == "int8"
    assert "ConvInteger" in {n.op_type for n in onnx.load(str(fused_bundle / "backbone.onnx")).graph.node}
    assert {TAIL_WEIGHT, "conv_head.weight", "head.weight"} <= set(m.head.trainable)
    tail_ops = {n.op_type for n in onnx.load(str(fused_bundle / "head" / "training_model.onnx")).graph.node}
    assert "Conv" in tail_ops and not tail_ops & {"ConvInteger", "DynamicQuantizeLinear", "QuantizeLinear"}
    assert {v.dtype for v in Personalizer.from_bundle(fused_bundle).head_parameters().values()} == {np.dtype(np.float32)}
    # The step graph differentiates the conv blocks in standard operators (export.conv_backward).
    # float32 round-off of a conv block's gradients, checked at two batch sizes: 1e-5 to 1.1e-4 measured
    assert "head/parameters.npz" in m.files and m.head.step_batch > 0 and m.metrics["step_graph_parity"] < 5e-4
    assert m.metrics["parity_max_abs_diff"] < 1e-3


def test_a_fused_bundle_ships_a_learning_rate_its_conv_blocks_train_at(fused_bundle):
    m = Bundle.load(fused_bundle).manifest
    assert m.training["lr"] == FUSED_LR  # at the head's 1e-2 the tail diverges to chance accuracy
    assert m.metrics["server_train_accuracy"] > 0.5  # three classes: chance is a third


def test_fit_trains_the_tail_blocks_and_the_round_trip_keeps_them(fused_bundle, fashion, tmp_path, read_checkpoint):
    shipped = read_checkpoint(fused_bundle / "head" / "checkpoint")
    images, labels = _few(fashion["test"], 3)
    # A dynamically quantized backbone's output depends on the batch it ran in (its ranges are per batch):
    # a shared feature cache gives the restored personalizer the very features the first one trained on.
    runtime = RuntimeConfig(cache_dir=str(tmp_path / "features"))
    p = Personalizer.from_bundle(fused_bundle, runtime=runtime)
    before, proba_before = p.head_parameters(), p.predict_proba(images)
    p.fit(images, labels, epochs=3, batch_size=4, lr=1e-3, validation_fraction=0.0, accept="always")
    after = p.head_parameters()
    assert p.report_.accepted and np.isfinite(p.history_).all()
    for name in (TAIL_WEIGHT, "conv_head.weight", "head.weight"):
        assert np.abs(after[name] - before[name]).max() > 0, name
    proba = p.predict_proba(images)
    assert np.abs(proba - proba_before).max() > 1e-4
    p.save(tmp_path / "state")
    restored = Personalizer.load(tmp_path / "state", runtime=runtime)
    assert all(np.array_equal(restored.head_parameters()[k], v) for k, v in after.items())
    np.testing.assert_allclose(restored.predict_proba(images), proba, atol=1e-6)
    # Inside the training graph: what trains changed, what is frozen stayed; the lower blocks are not in it at all.
    p.save_head_checkpoint(tmp_path / "checkpoint")
    trained, head = read_checkpoint(tmp_path / "checkpoint"), p.bundle.manifest.head
    assert set(trained) == set(shipped) and {n for n, (trains, _) in trained.items() if trains} == set(head.trainable)
    # The L2-SP term's anchors are no weights: a head checkpoint is written as its own anchor.
    for name, (trains, values) in ((n, v) for n, v in trained.items() if not n.startswith("l2sp.")):
        assert np.array_equal(values, shipped[name][1]) != trains, f"{name}: trained weights change, frozen ones stay"
    assert not [n for n in trained if n.startswith("blocks.") and not n.startswith("blocks.15.")]
    drift = restored.drift_report()
    assert np.isfinite(drift["feature_shift"])
    # The standalone model joins the frozen backbone and the personalized tail.
    model = restored.export_inference_model(tmp_path / "model.onnx")
    spec = restored.bundle.manifest.input
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"pixel_values": preprocess(check_images(images), spec)})[0]
    np.testing.assert_allclose(got, proba, atol=1e-4)


def test_the_step_graph_trains_the_conv_blocks_as_the_ort_artifacts_do(fused_bundle, fashion, step_and_ort_agree):
    images, labels = _few(fashion["test"], 3)
    p = Personalizer.from_bundle(fused_bundle)
    targets = np.array([p.labels.index(label) for label in labels])
    features = p.transform(images)
    step_and_ort_agree(fused_bundle, features, targets, steps=1, atol=1e-5)  # the gradients agree to float32 round-off
    # From the second step on, AdamW's m / sqrt(v) turns the round-off of near-zero gradients into differences of up
    # to lr (1e-3) in single weights; measured against float64 torch, each engine's gradients are off by about 3e-7.
    step_and_ort_agree(fused_bundle, features, targets, steps=3, loss_atol=2e-4, atol=2e-3)


def test_the_numpy_engine_refuses_a_fused_bundle(fused_bundle):
    with pytest.raises(ConfigError, match="numpy engine"):
        Personalizer.from_bundle(fused_bundle, runtime=RuntimeConfig(engine="numpy"))
    assert Personalizer.from_bundle(fused_bundle).engine.value == "ort"


def test_onnx_files_refuse_trainable_blocks_before_any_work(minilm_onnx, bbc_splits, tmp_path):
    texts, labels = bbc_splits["server"]
    model, tokenizer = minilm_onnx
    with pytest.raises(ExportError, match="not supported for ONNX backbone files"):
        export_bundle(
            model,
            tmp_path / "b",
            data=ServerData(texts, labels),
            config=ExportConfig(device_trainable_blocks=1),
            backbone=BackboneOptions(feature_output="sentence_embedding", tokenizer=tokenizer),
        )
    assert not (tmp_path / "b").exists()


def test_trainable_blocks_must_be_a_count_below_the_backbones_blocks(tmp_path, capsys):
    with pytest.raises(ConfigError, match="device_trainable_blocks"):
        ExportConfig(device_trainable_blocks=-1)
    code = main(
        [
            "export",
            "--model",
            "efficientnet-lite0",
            "--labels",
            "a,b",
            "--output",
            str(tmp_path / "b"),
            "--device-trainable-blocks",
            "16",
        ]
    )
    assert code != 0 and "between 1 and 15" in capsys.readouterr().err


def test_too_many_trainable_blocks_are_refused_before_fine_tuning(fashion, tmp_path):
    images, labels = fashion["server"]
    model = VISION_MODELS["efficientnet-lite0"]
    with pytest.raises(ExportError, match="between 1 and 15"):
        export_bundle(
            model.build(),
            tmp_path / "b",
            data=ServerData(images, labels),
            config=ExportConfig(device_trainable_blocks=16),
            fine_tuning=FineTuning(FineTuneConfig(dry_run=True), log_dir=tmp_path / "log"),
        )
    assert not (tmp_path / "log").exists() and not (tmp_path / "b").exists()
