"""The numpy, step and ORT engines train the same head to the same weights."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from device_runtime import Personalizer
from device_runtime.engines import open_engine, resolve_engine
from device_runtime.trainer import train_head
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.config import Engine, RuntimeConfig, TrainConfig
from edgeft.errors import ConfigError

PARITY_ATOL = 1e-5  # float32 round-off over hundreds of AdamW steps; measured max diff is about 5e-7
PARITY_RTOL = 1e-6  # the same for the masked spare slots' biases, near -1e4, whose float32 spacing is 1e-3


@pytest.fixture(scope="module")
def data(minilm_bundle, bbc_splits, tmp_path_factory):
    from device_runtime import Personalizer

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
        TrainConfig(epochs=10),
        TrainConfig(epochs=10, schedule="cosine", warmup_steps=5, batch_size=7),
        TrainConfig(epochs=10, schedule="constant", lr=3e-2, weight_decay=0.2),
        TrainConfig(epochs=10, weight_decay=0.0, balanced_sampling=True),
        TrainConfig(epochs=10, schedule="constant", lr=5e-2, l2sp=0.5),
    ],
    ids=["linear", "cosine-warmup", "constant-decay", "no-decay-balanced", "l2sp"],
)
@pytest.mark.parametrize("engine", [Engine.NUMPY, Engine.STEP])
def test_the_numpy_and_step_engines_reach_the_ort_engines_head_weights(data, config, engine):
    ort_params, ort_losses = _train(Engine.ORT, data, config)
    other_params, other_losses = _train(engine, data, config)
    assert ort_params.keys() == other_params.keys()
    for name in ort_params:
        np.testing.assert_allclose(other_params[name], ort_params[name], atol=PARITY_ATOL, rtol=PARITY_RTOL)
    np.testing.assert_allclose(other_losses, ort_losses, atol=1e-5)


@pytest.mark.parametrize("engine", [Engine.ORT, Engine.NUMPY, Engine.STEP])
def test_parameters_are_a_snapshot_that_later_steps_and_other_sessions_do_not_change(data, engine):
    bundle, features, targets = data
    head = open_engine(engine, bundle, weight_decay=0.01)
    head.train_step(features[:8], targets[:8], 1e-2)
    head.set_parameters(head.parameters())  # values the caller gave, as a guard's mix or a fleet's head are
    snapshot = head.parameters()
    kept = {name: value.copy() for name, value in snapshot.items()}
    head.train_step(features[8:16], targets[8:16], 1e-2)
    head.set_parameters(head.parameters())  # the values the snapshot was taken from are replaced, their memory freed
    Personalizer.from_bundle(bundle.path).transform(["The bank's shares fell.", "A late goal won the cup."] * 50)
    for name, value in kept.items():
        np.testing.assert_array_equal(snapshot[name], value, err_msg=f"{engine.value} engine: {name} changed under the caller")


def test_l2sp_holds_the_head_near_the_shipped_one_in_both_engines(data):
    bundle, _, _ = data
    shipped = open_engine(Engine.NUMPY, bundle).parameters()["head.weight"]
    for engine in (Engine.ORT, Engine.NUMPY):
        free, held = (_train(engine, data, TrainConfig(epochs=10, lr=5e-2, l2sp=s))[0]["head.weight"] for s in (0.0, 1.0))
        assert np.linalg.norm(held - shipped) < 0.7 * np.linalg.norm(free - shipped), engine


def test_training_moves_the_head_and_both_engines_give_the_same_logits(data):
    bundle, features, targets = data
    ort_head, np_head = open_engine(Engine.ORT, bundle), open_engine(Engine.NUMPY, bundle)
    np.testing.assert_allclose(np_head.logits(features), ort_head.logits(features), atol=1e-5)
    before = ort_head.parameters()
    ort_head.train_step(features[:8], targets[:8], 1e-2)
    assert any(not np.array_equal(before[k], v) for k, v in ort_head.parameters().items())


def test_saved_engine_state_resumes_exactly(data, tmp_path):
    bundle, features, targets = data
    for kind in (Engine.ORT, Engine.NUMPY):
        head = open_engine(kind, bundle)
        head.train_step(features[:16], targets[:16], 1e-2)
        head.save(tmp_path / f"state{head.state_suffix}")
        resumed = open_engine(kind, bundle, tmp_path / f"state{head.state_suffix}")
        head.train_step(features[16:32], targets[16:32], 1e-2)
        resumed.train_step(features[16:32], targets[16:32], 1e-2)
        for name, value in head.parameters().items():
            np.testing.assert_array_equal(resumed.parameters()[name], value)


def test_auto_engine_is_ort_where_its_training_api_loads():
    assert resolve_engine("auto") is Engine.ORT


def test_numpy_is_used_as_asked_and_auto_falls_back_to_it_where_ort_training_cannot_load(monkeypatch):
    import warnings

    from device_runtime import ort_training
    from device_runtime.engines.base import EngineFallbackWarning
    from edgeft.errors import ConfigError

    monkeypatch.setattr(ort_training, "training_available", lambda: "the installed onnxruntime has no training API")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy asked for by name: no fallback, so no warning
        assert resolve_engine("numpy") is Engine.NUMPY
    with pytest.warns(EngineFallbackWarning, match="The installed onnxruntime has no training API, so the numpy engine"):
        assert resolve_engine("auto") is Engine.NUMPY
    with pytest.raises(ConfigError, match='engine="ort" was requested, but the installed onnxruntime has no training API'):
        resolve_engine("ort")


def test_the_step_graph_is_plain_onnx_that_onnxruntime_1_19_reads(minilm_bundle):
    m = Bundle.load(minilm_bundle).manifest
    for name in (layout.STEP_MODEL, layout.STEP_EVAL_MODEL):
        model = onnx.load(str(minilm_bundle / name))
        assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}, name
        assert model.ir_version <= 10 and {o.domain: o.version for o in model.opset_import}[""] == 17
    assert m.head.step_batch == m.training["batch_size"]
    assert m.metrics["step_graph_parity"] < 1e-5


def test_the_step_graph_takes_any_batch_and_copies_no_output(minilm_bundle):
    model = onnx.load(str(minilm_bundle / layout.STEP_MODEL))
    features = next(i for i in model.graph.input if i.name == "features")
    assert features.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert not [node.name for node in model.graph.node if node.op_type == "Identity"]


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


@pytest.mark.parametrize("rows", [1, 5, 40])
def test_the_step_graph_takes_any_batch_and_steps_as_numpy_does(data, rows):
    bundle, features, targets = data
    assert bundle.manifest.head.step_batch == 32 and len(targets) >= 40  # 40 rows: more than the graph was traced with
    step, reference = open_engine(Engine.STEP, bundle), open_engine(Engine.NUMPY, bundle)
    for head in (step, reference):
        head.train_step(features[:rows], targets[:rows], 1e-2)
    for name, value in reference.parameters().items():
        np.testing.assert_allclose(step.parameters()[name], value, atol=1e-6, err_msg=name)


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
