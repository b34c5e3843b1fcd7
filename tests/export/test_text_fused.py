"""Text cut bundles (--device-trainable-blocks N on MiniLM, and --device-lora): the last layers train on the device."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch

from device_runtime import Personalizer
from device_runtime.backbone import TextBackbone
from device_runtime.ort_training import HeadTrainingSession
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.cli import main
from edgeft.config import FUSED_LR, TEXT_FUSED_LR, ExportConfig, RuntimeConfig
from edgeft.errors import ConfigError, ExportError
from example_data import minilm_path
from export import ServerData, export_bundle

MAX_LENGTH = 32  # MiniLM's 128 would make every step 4x the work; the cut is the same
LAST = "blocks.5."  # MiniLM has 6 layers; N=1 trains the last
BASE_QUERY = "blocks.5.attention.self.query.base.weight"


def _export(folder: Path, texts: list[str], labels: list[str], lora_rank: int = 0) -> Path:
    config = ExportConfig(
        name="minilm-cut",
        max_length=MAX_LENGTH,
        device_trainable_blocks=1,
        device_lora_rank=lora_rank,
        quantization="int8-dynamic",
        accept_quality_loss=True,
    )
    export_bundle(minilm_path(), folder, data=ServerData(texts, labels), config=config)
    return folder


@pytest.fixture(scope="module")
def cut_bundle(tmp_path_factory: pytest.TempPathFactory, bbc_splits) -> Path:
    """MiniLM cut before its last layer, INT8 frozen part. Do not modify."""
    return _export(tmp_path_factory.mktemp("cut") / "minilm-cut", *bbc_splits["server"])


@pytest.fixture(scope="module")
def lora_bundle(tmp_path_factory: pytest.TempPathFactory, bbc_splits) -> Path:
    """As ``cut_bundle``, with rank-4 LoRA on the last layer's attention. Do not modify."""
    return _export(tmp_path_factory.mktemp("lora") / "minilm-lora", *bbc_splits["server"], lora_rank=4)


def _fit(bundle: Path, bbc_splits, read_checkpoint, tmp_path: Path) -> tuple[dict, dict]:
    """The shipped checkpoint and the one after a short device fit."""
    texts, labels = bbc_splits["user"]
    p = Personalizer.from_bundle(bundle, runtime=RuntimeConfig(cache_dir=str(tmp_path / "features")))
    p.fit(texts[:20], labels[:20], epochs=2, batch_size=8, lr=1e-3, validation_fraction=0.0, accept="always")
    p.save_head_checkpoint(tmp_path / "checkpoint")
    return read_checkpoint(bundle / "head" / "checkpoint"), read_checkpoint(tmp_path / "checkpoint")


def _weights(checkpoint: dict) -> dict:
    return {name: value for name, value in checkpoint.items() if not name.startswith("l2sp.")}


def test_the_manifest_records_the_cut_hidden_states_and_mask_per_token(cut_bundle):
    m = Bundle.load(cut_bundle).manifest
    assert m.backbone.intermediate_shape == [385, MAX_LENGTH]  # 384 hidden + the mask, channels first
    assert m.backbone.feature_size == m.head.in_features == 385 * MAX_LENGTH
    assert (m.head.backbone_blocks, m.head.lora_rank, m.backbone.precision) == (1, 0, "int8")
    assert m.metrics["parity_max_abs_diff"] < 1e-4


def test_whole_layers_ship_a_smaller_learning_rate_than_lora(cut_bundle, lora_bundle):
    assert Bundle.load(cut_bundle).manifest.training["lr"] == TEXT_FUSED_LR  # measured best on Rotten Tomatoes
    assert Bundle.load(lora_bundle).manifest.training["lr"] == FUSED_LR


def test_a_saved_and_loaded_personalizer_predicts_the_same(cut_bundle, bbc_splits, tmp_path):
    texts, labels = bbc_splits["user"]
    runtime = RuntimeConfig(cache_dir=str(tmp_path / "features"))  # INT8 features depend on the batch: share them
    p = Personalizer.from_bundle(cut_bundle, runtime=runtime)
    p.fit(texts[:20], labels[:20], epochs=1, batch_size=8, validation_fraction=0.0, accept="always")
    p.save(tmp_path / "state")
    restored = Personalizer.load(tmp_path / "state", runtime=runtime)
    np.testing.assert_allclose(restored.predict_proba(texts[20:28]), p.predict_proba(texts[20:28]), atol=1e-6)


def test_the_device_pads_every_text_to_max_length(cut_bundle):
    feeds = next(TextBackbone(Bundle.load(cut_bundle)).batch_feeds(["short", "a somewhat longer text than that"]))
    assert feeds["input_ids"].shape == (2, MAX_LENGTH)


def test_the_replay_set_ships_as_float16(cut_bundle):
    with np.load(cut_bundle / layout.REPLAY) as replay:
        assert replay["features"].dtype == np.float16 and replay["features"].shape[1] == 385 * MAX_LENGTH


def test_fit_trains_the_last_layer_and_keeps_the_rest_of_the_graph(cut_bundle, bbc_splits, read_checkpoint, tmp_path):
    shipped, trained = (_weights(c) for c in _fit(cut_bundle, bbc_splits, read_checkpoint, tmp_path))
    assert not [n for n in trained if n.startswith("blocks.") and not n.startswith(LAST)]  # lower layers not in it
    changed = {n for n, (_, values) in trained.items() if not np.array_equal(values, shipped[n][1])}
    assert changed == {n for n, (trains, _) in trained.items() if trains} and f"{LAST}output.dense.weight" in changed


def test_the_ort_loss_of_a_step_is_the_torch_tail_and_heads_loss(cut_bundle, bbc_splits):
    from export.text_fused import TextTail, load_encoder

    texts, labels = bbc_splits["user"]
    p = Personalizer.from_bundle(cut_bundle)
    m = p.bundle.manifest
    features, targets = p.transform(texts[:8]), np.array([m.labels.index(y) for y in labels[:8]])
    head = cut_bundle / "head"
    session = HeadTrainingSession(
        head / "training_model.onnx", head / "eval_model.onnx", head / "optimizer_model.onnx", head / "checkpoint"
    )
    weights = {n: torch.from_numpy(v) for n, v in session.parameters().items()}  # copies, taken before the step
    loss = session.train_step(features, targets)
    tail = TextTail(load_encoder(minilm_path()), 1, m.backbone.intermediate_shape).eval()
    tail.load_state_dict({n: w for n, w in weights.items() if n.startswith("blocks.")})
    with torch.no_grad():
        logits = tail(torch.from_numpy(features)) @ weights["head.weight"].T + weights["head.bias"]
        expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets)).item()
    assert loss == pytest.approx(expected, abs=1e-4)


def test_lora_trains_the_adapters_and_the_head_only(lora_bundle, bbc_splits, read_checkpoint, tmp_path):
    shipped, trained = (_weights(c) for c in _fit(lora_bundle, bbc_splits, read_checkpoint, tmp_path))
    trains = {n for n, (t, _) in trained.items() if t}
    assert trains == {n for n in trained if ".lora_" in n or n.startswith("head.")} and len(trains) == 4 * 2 + 2
    changed = {n for n, (_, values) in trained.items() if not np.array_equal(values, shipped[n][1])}
    assert changed == trains and BASE_QUERY in trained  # the base weights are in the graph, and stayed


def test_a_new_lora_layer_computes_its_base_layer_and_its_a_is_seeded():
    from export.text_fused import LoRALinear

    base, x = torch.nn.Linear(8, 6), torch.randn(3, 8)
    lora = LoRALinear(base, 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(lora(x), base(x))  # B starts at zero
    assert torch.equal(lora.lora_A, LoRALinear(base, 2, torch.Generator().manual_seed(0)).lora_A) and lora.lora_A.any()


def test_lora_on_every_layer_is_refused_before_any_work(bbc_splits, tmp_path):
    texts, labels = bbc_splits["server"]
    with pytest.raises(ExportError, match="LoRA on every layer .*DynamicQuantizeLinear"):
        export_bundle(
            minilm_path(),
            tmp_path / "b",
            data=ServerData(texts, labels),
            config=ExportConfig(device_trainable_blocks=6, device_lora_rank=4),
        )
    assert not (tmp_path / "b").exists()


def test_every_layer_trainable_is_refused(bbc_splits, tmp_path):
    texts, labels = bbc_splits["server"]
    with pytest.raises(ExportError, match="between 1 and 5"):
        export_bundle(
            minilm_path(), tmp_path / "b", data=ServerData(texts, labels), config=ExportConfig(device_trainable_blocks=6)
        )


def test_lora_needs_trainable_blocks(tmp_path, capsys):
    with pytest.raises(ConfigError, match="device_trainable_blocks"):
        ExportConfig(device_lora_rank=4)
    code = main(
        ["export", "--model", str(minilm_path()), "--labels", "a,b", "--output", str(tmp_path / "b"), "--device-lora", "4"]
    )
    assert code != 0 and "--device-trainable-blocks" in capsys.readouterr().err


def test_the_numpy_engine_refuses_a_text_cut_bundle(cut_bundle):
    with pytest.raises(ConfigError, match="numpy engine"):
        Personalizer.from_bundle(cut_bundle, runtime=RuntimeConfig(engine="numpy"))


def test_inspect_says_lora_trains(lora_bundle, capsys):
    assert main(["inspect", str(lora_bundle)]) == 0
    assert "rank-4 LoRA adapters" in capsys.readouterr().out


def test_the_inference_model_of_a_trained_bundle_predicts_as_the_personalizer(cut_bundle, bbc_splits, tmp_path):
    texts, labels = bbc_splits["user"]
    p = Personalizer.from_bundle(cut_bundle)
    p.fit(texts[:20], labels[:20], epochs=2, batch_size=8, lr=1e-3, validation_fraction=0.0, accept="always")
    model = p.export_inference_model(tmp_path / "model.onnx")
    feeds = next(TextBackbone(p.bundle).batch_feeds(texts[20:28]))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["probabilities"], feeds)[0], p.predict_proba(texts[20:28]), atol=1e-4)


def test_the_service_personalizes_a_cut_bundle_and_rolls_it_back(cut_bundle, bbc_splits, tmp_path):
    from device_runtime.service.app import create_app
    from device_runtime.service.settings import ServiceSettings
    from tests.serve.conftest import running, wait_for_job

    texts, labels = bbc_splits["user"]
    settings = ServiceSettings.for_model(cut_bundle, state_dir=tmp_path / "state")
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        shipped = http.post("/v1/predict", json={"texts": texts[:5]}).json()["predictions"]
        http.post("/v1/examples", json={"examples": [{"text": t, "label": y} for t, y in zip(texts, labels)]})
        job = wait_for_job(http, http.post("/v1/personalize", json={"epochs": 2, "accept": "always"}).json()["id"])
        assert job["status"] == "succeeded" and job["result"]["head_version"] == 1
        assert http.post("/v1/predict", json={"texts": texts[:5]}).json()["predictions"] != shipped
        assert http.post("/v1/rollback", json={}).json()["head_version"] == 0
        assert http.post("/v1/predict", json={"texts": texts[:5]}).json()["predictions"] == shipped


@pytest.mark.parametrize("kind", ["cut", "lora"])
def test_the_step_graph_takes_the_steps_the_ort_artifacts_take(kind, cut_bundle, lora_bundle, bbc_splits, step_and_ort_agree):
    bundle = {"cut": cut_bundle, "lora": lora_bundle}[kind]
    texts, labels = bbc_splits["user"]
    p = Personalizer.from_bundle(bundle)
    features, targets = p.transform(texts[:24]), np.array([p.labels.index(label) for label in labels[:24]])
    m = Bundle.load(bundle).manifest
    assert m.head.step_batch > 0 and m.metrics["step_graph_parity"] < 1e-4
    step_and_ort_agree(bundle, features, targets, atol=1e-4)
