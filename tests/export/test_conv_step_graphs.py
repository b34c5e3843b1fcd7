"""Step graphs through trainable convolutions: a sensor bundle's last conv block trains on plain onnxruntime.

A convolution's gradient is written in convolutions (``export.conv_backward``), so the step graph of a cut
with conv blocks exports to standard ONNX operators; it takes the steps ORT's training artifacts take.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from device_runtime import Personalizer
from edgeft.config import ExportConfig, RuntimeConfig
from edgeft.layout import STEP_MODEL
from export import FineTuning, ServerData, export_bundle
from export.adapters.tensor import SCRATCH_FINE_TUNING
from export.conv_backward import convolution_backward
from export.step_graph_warning import StepGraphWarning

SWAPPED = [1, 0, 2, 4, 3, 5]  # a user whose accelerometer x/y and gyroscope x/y axes are swapped
FIT = {"epochs": 20, "validation_fraction": 0.0, "accept": "always"}


@pytest.mark.parametrize(
    "dims, groups, stride, padding, dilation",
    [(2, 1, 1, 1, 1), (2, 6, 2, 2, 1), (2, 6, 1, 0, 2), (2, 2, 2, 1, 1), (1, 1, 1, 3, 1), (1, 3, 2, 1, 2)],
    ids=["2d", "depthwise-strided", "depthwise-dilated", "grouped", "1d", "1d-grouped-strided-dilated"],
)
def test_a_convolutions_gradient_written_in_convolutions_is_autograds(dims, groups, stride, padding, dilation):
    torch.manual_seed(0)
    x = torch.randn(3, 6, *(9,) * dims, dtype=torch.float64, requires_grad=True)
    w = torch.randn(12, 6 // groups, *(3,) * dims, dtype=torch.float64, requires_grad=True)
    b = torch.randn(12, dtype=torch.float64, requires_grad=True)
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[dims]
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    grad = torch.randn_like(y)
    expected = torch.autograd.grad(y, (x, w, b), grad)
    args = ([stride] * dims, [padding] * dims, [dilation] * dims, False, [0] * dims, groups, [True] * 3)
    got = convolution_backward(grad, x.detach(), w.detach(), [12], *args)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-12, rtol=0)


@pytest.fixture(scope="module")
def cnn1d_cut(tmp_path_factory: pytest.TempPathFactory, basic_motions) -> Path:
    """cnn1d trained on BasicMotions' server series, cut before its last conv stage; a StepGraphWarning fails it."""
    path = tmp_path_factory.mktemp("cnn1d-cut") / "bundle"
    config = ExportConfig(name="basic-motions-cut", quantization="none", device_trainable_blocks=1)
    short = FineTuning(dataclasses.replace(SCRATCH_FINE_TUNING, epochs=10))
    with warnings.catch_warnings():
        warnings.simplefilter("error", StepGraphWarning)
        export_bundle("cnn1d", path, data=ServerData(*basic_motions["server"]), config=config, fine_tuning=short)
    return path


def _user(basic_motions) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """The swapped-axes user's series: every other one to personalize on, the rest held out."""
    X, labels = basic_motions["user"]
    X = X[:, SWAPPED]
    return X[::2], labels[::2], X[1::2], labels[1::2]


def test_a_cnn1d_cut_ships_step_graphs_of_standard_operators_that_compute_torchs_step(cnn1d_cut):
    manifest = Personalizer.from_bundle(cnn1d_cut).bundle.manifest
    assert manifest.head.backbone_blocks == 1 and manifest.backbone.intermediate_shape == [64, 100]
    assert manifest.head.step_batch > 0 and manifest.metrics["step_graph_parity"] < 1e-5
    step = onnx.load(str(cnn1d_cut / STEP_MODEL))
    assert "Conv" in {n.op_type for n in step.graph.node}  # the block's forward pass and its weight's gradient
    assert {n.domain for n in step.graph.node} == {""}


def test_the_step_engine_personalizes_the_last_conv_block_as_the_ort_engine_does(cnn1d_cut, basic_motions):
    X, y, X_held, y_held = _user(basic_motions)
    runs = {}
    for engine in ("ort", "step"):
        p = Personalizer.from_bundle(cnn1d_cut, runtime=RuntimeConfig(engine=engine))
        before = p.evaluate(X_held, y_held)["accuracy"]
        runs[engine] = p.fit(X, y, **FIT)
        assert p.report_.engine == engine
    np.testing.assert_allclose(runs["step"].history_, runs["ort"].history_, atol=1e-5)
    ort_params = runs["ort"].head_parameters()
    for name, value in runs["step"].head_parameters().items():
        np.testing.assert_allclose(value, ort_params[name], atol=1e-5, err_msg=name)
    assert runs["step"].evaluate(X_held, y_held)["accuracy"] > before  # 0.55 -> 0.80 when measured


def test_a_step_engine_state_of_the_cut_saves_and_loads_with_the_same_predictions(cnn1d_cut, basic_motions, tmp_path):
    X, y, X_held, _ = _user(basic_motions)
    p = Personalizer.from_bundle(cnn1d_cut, runtime=RuntimeConfig(engine="step")).fit(X, y, epochs=2, accept="always")
    p.save(tmp_path / "state")
    loaded = Personalizer.load(tmp_path / "state", runtime=RuntimeConfig(engine="step"))
    assert loaded.current_version == p.current_version == 1
    np.testing.assert_allclose(loaded.predict_proba(X_held), p.predict_proba(X_held), atol=1e-6)
