"""The step engine (the bundle's step graphs on plain onnxruntime) trains the head as the ORT artifacts do."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from device_runtime import Personalizer
from device_runtime.engines import open_engine, resolve_engine
from device_runtime.trainer import train_head
from edgeft import bundle as layout
from edgeft.bundle import Bundle
from edgeft.config import Engine, RuntimeConfig, TrainConfig
from edgeft.errors import ConfigError

PARITY_ATOL = 1e-5  # float32 round-off over tens of AdamW steps, as between the numpy and ORT engines
PARITY_RTOL = 1e-6  # the masked spare slots' biases, near -1e4, whose float32 spacing is 1e-3


@pytest.fixture(scope="module")
def data(minilm_bundle, bbc_splits):
    texts, labels = bbc_splits["user"]
    p = Personalizer.from_bundle(minilm_bundle)
    targets = np.array([p.labels.index(label) for label in labels])
    return Bundle.load(minilm_bundle), p.transform(texts), targets


def _train(engine: Engine, data, config: TrainConfig):
    bundle, features, targets = data
    head = open_engine(engine, bundle, weight_decay=config.weight_decay)
    head.l2sp = config.l2sp or 0.0
    result = train_head(head, features, targets, config)
    return head.parameters(), result.history


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(epochs=4),
        TrainConfig(epochs=4, schedule="cosine", warmup_steps=3, batch_size=7),
        TrainConfig(epochs=4, schedule="constant", lr=3e-2, weight_decay=0.2),
        TrainConfig(epochs=4, schedule="constant", lr=5e-2, l2sp=0.5),
    ],
    ids=["linear", "padded-batches", "other-decay", "l2sp"],
)
def test_step_and_ort_engines_reach_the_same_head_weights_and_losses(data, config):
    ort_params, ort_losses = _train(Engine.ORT, data, config)
    step_params, step_losses = _train(Engine.STEP, data, config)
    assert ort_params.keys() == step_params.keys()
    for name in ort_params:
        np.testing.assert_allclose(step_params[name], ort_params[name], atol=PARITY_ATOL, rtol=PARITY_RTOL)
    np.testing.assert_allclose(step_losses, ort_losses, atol=1e-5)


def test_the_step_graph_is_plain_onnx_that_onnxruntime_1_19_reads(minilm_bundle):
    m = Bundle.load(minilm_bundle).manifest
    for name in (layout.STEP_MODEL, layout.STEP_EVAL_MODEL):
        model = onnx.load(str(minilm_bundle / name))
        assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}, name
        assert model.ir_version <= 10 and {o.domain: o.version for o in model.opset_import}[""] == 17
    assert m.head.step_batch == m.training["batch_size"]
    assert m.metrics["step_graph_parity"] < 1e-5


def test_step_engine_state_resumes_exactly_and_is_the_numpy_engines_format(data, tmp_path):
    bundle, features, targets = data
    head = open_engine(Engine.STEP, bundle)
    head.train_step(features[:16], targets[:16], 1e-2)
    head.save(tmp_path / "state.npz")
    resumed, other = (
        open_engine(Engine.STEP, bundle, tmp_path / "state.npz"),
        open_engine(Engine.NUMPY, bundle, tmp_path / "state.npz"),
    )
    for engine in (head, resumed, other):
        engine.train_step(features[16:32], targets[16:32], 1e-2)
    for name, value in head.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[name], value)
        np.testing.assert_allclose(other.parameters()[name], value, atol=1e-6)


def test_a_batch_larger_than_the_step_graph_is_refused_with_the_fix(data):
    bundle, features, targets = data
    head = open_engine(Engine.STEP, bundle)
    n = bundle.manifest.head.step_batch + 1
    with pytest.raises(ConfigError, match=f"at most {n - 1} examples per step .* Use batch_size <= {n - 1}"):
        head.train_step(features[:n], targets[:n], 1e-2)


def test_a_new_label_trains_in_a_spare_slot_and_a_saved_state_predicts_the_same(minilm_bundle, user, test_split, tmp_path):
    texts, labels = user
    p = Personalizer.from_bundle(minilm_bundle, runtime=RuntimeConfig(engine="step"))
    p.fit(
        texts[:24] + ["a brand new kind of story"] * 3, labels[:24] + ["novel"] * 3, epochs=3, accept="always", new_labels="add"
    )
    assert p.engine is Engine.STEP and p.labels[-1] == "novel"
    p.save(tmp_path / "state")
    loaded = Personalizer.load(tmp_path / "state", minilm_bundle, runtime=RuntimeConfig(engine="step"))
    np.testing.assert_allclose(loaded.predict_proba(test_split[0][:5]), p.predict_proba(test_split[0][:5]), atol=1e-6)


def test_auto_chooses_the_step_engine_where_ort_training_is_missing(monkeypatch, minilm_bundle):
    from device_runtime import ort_training

    monkeypatch.setattr(ort_training, "training_available", lambda: "the installed onnxruntime has no training API")
    assert resolve_engine("auto", Bundle.load(minilm_bundle)) is Engine.STEP
    with pytest.raises(ConfigError, match='engine="step" was requested, but no bundle was given'):
        resolve_engine("step")
