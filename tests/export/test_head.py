"""The MLP head (``head="mlp"``, --head mlp): one hidden ReLU layer that both engines train alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.config import Engine, ExportConfig
from export import BackboneOptions, ServerData, export_bundle

HIDDEN = 16
STEPS = 150  # full-batch AdamW steps: enough for the MLP to fit XOR at lr 1e-2 (it reaches 1.0 in about 100)


@pytest.fixture(scope="module")
def mlp_bundle(minilm_onnx, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM with an untrained MLP head: no server data, so nothing but the head's artifacts is built."""
    model, tokenizer = minilm_onnx
    path = tmp_path_factory.mktemp("mlp") / "bundle"
    export_bundle(
        model,
        path,
        data=ServerData(label_set=["no", "yes"]),
        backbone=BackboneOptions(feature_output="sentence_embedding", tokenizer=tokenizer),
        config=ExportConfig(head="mlp", hidden_size=HIDDEN, quantization="none"),
    )
    return path


@pytest.fixture(scope="module")
def xor() -> tuple[np.ndarray, np.ndarray]:
    """384-d features whose class is the XOR of the signs of their first two coordinates: no line separates it."""
    rng = np.random.default_rng(0)
    features = np.zeros((400, 384), np.float32)
    features[:, :2] = rng.uniform(-1, 1, size=(400, 2))
    return features, ((features[:, 0] > 0) ^ (features[:, 1] > 0)).astype(np.int64)


def _train(kind: Engine, bundle: Path, features: np.ndarray, targets: np.ndarray):
    from device_runtime.engines import open_engine

    head = open_engine(kind, Bundle.load(bundle))  # weight decay: the bundle's, which ORT's optimizer artifact bakes in
    for _ in range(STEPS):
        head.train_step(features, targets, 1e-2)
    return head


def test_the_manifest_and_checkpoint_hold_a_hidden_layer_and_an_output_layer(mlp_bundle, read_checkpoint):
    head = Bundle.load(mlp_bundle).manifest.head
    outputs = 2 + head.spare_labels  # two labels, then the slots reserved for labels a device adds
    assert (head.kind, head.hidden_size, head.in_features, head.out_features) == ("mlp", HIDDEN, 384, outputs)
    checkpoint = read_checkpoint(mlp_bundle / layout.CHECKPOINT)
    assert {name: values.shape for name, (trains, values) in checkpoint.items() if trains} == {
        "head.hidden.weight": (HIDDEN, 384),
        "head.hidden.bias": (HIDDEN,),
        "head.out.weight": (outputs, HIDDEN),
        "head.out.bias": (outputs,),
    }
    # Kaiming-initialized as torch's nn.Linear is: from zeros, no gradient would pass the ReLU.
    assert np.abs(checkpoint["head.hidden.weight"][1]).max() > 0


def test_the_ort_graph_computes_relu_between_two_layers(mlp_bundle, xor):
    from device_runtime.engines import open_engine

    head = open_engine(Engine.ORT, Bundle.load(mlp_bundle))
    p, features = head.parameters(), xor[0][:8]
    hidden = np.maximum(features @ p["head.hidden.weight"].T + p["head.hidden.bias"], 0)
    np.testing.assert_allclose(head.logits(features), hidden @ p["head.out.weight"].T + p["head.out.bias"], atol=1e-5)


def test_the_mlp_head_fits_what_a_linear_head_cannot(mlp_bundle, minilm_bundle, xor):
    features, targets = xor
    mlp = _train(Engine.ORT, mlp_bundle, features, targets)
    linear = _train(Engine.ORT, minilm_bundle, features, targets)  # the session's linear head (5 outputs; 2 used)
    assert np.mean(mlp.logits(features).argmax(1) == targets) > 0.95
    assert np.mean(linear.logits(features).argmax(1) == targets) < 0.8


def test_the_numpy_engine_trains_the_mlp_head_to_ort_s_weights(mlp_bundle, xor):
    features, targets = xor
    ort_head, numpy_head = (_train(kind, mlp_bundle, features, targets) for kind in (Engine.ORT, Engine.NUMPY))
    for name, value in ort_head.parameters().items():
        np.testing.assert_allclose(numpy_head.parameters()[name], value, atol=1e-5, err_msg=name)
