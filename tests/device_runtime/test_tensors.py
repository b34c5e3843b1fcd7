"""Float-tensor bundles on the device, on real sensor data (BasicMotions: 6 channels x 100 steps, 4 activities).

The boundary check names what was expected for every wrong input (shape, length, dtype, NaN); windows of
another length are cropped or padded as the manifest says; personalizing to a user whose watch has its
x and y axes swapped recovers the accuracy the shipped model loses; the state saves, loads and rolls back.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_runtime import Personalizer
from device_runtime.tensor import fit_length
from device_runtime.validation import check_tensors
from edgeft.bundle import Bundle
from edgeft.errors import BundleError, DataError, DataTypeError, EdgeftError
from edgeft.manifest import Manifest

SWAP_XY = [1, 0, 2, 4, 3, 5]  # accelerometer x<->y, gyroscope x<->y: the watch turned a quarter on the wrist


@pytest.fixture(scope="module")
def spec(sensor_bundle):
    return Bundle.load(sensor_bundle).manifest.input


@pytest.fixture(scope="module")
def shifted_user(basic_motions):
    """The 40 unseen series with x and y swapped: 5 per activity to personalize on, the other 20 to test on."""
    X, labels = basic_motions["user"]
    X, labels = X[:, SWAP_XY], np.array(labels)
    own = np.concatenate([np.flatnonzero(labels == label)[:5] for label in sorted(set(labels))])
    rest = np.setdiff1d(np.arange(len(labels)), own)
    return (X[own], list(labels[own])), (X[rest], list(labels[rest]))


def test_the_manifest_declares_shape_statistics_and_length_policy(spec, basic_motions):
    X, _ = basic_motions["server"]
    assert spec.modality == "tensor" and spec.tensor_shape == [6, 100] and spec.length_policy == "crop_or_pad"
    np.testing.assert_allclose(spec.channel_mean, X.mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(spec.channel_std, X.std(axis=(0, 2)), rtol=1e-6)


@pytest.mark.parametrize(
    ("X", "error", "message"),
    [
        (np.zeros((2, 5, 100)), DataError, r"X has shape \(2, 5, 100\), but this bundle expects \(n, 6, any number of steps\)"),
        (np.zeros((6, 100)), DataError, r"a single example: pass X\[None\]"),
        (np.zeros((2, 6, 100), dtype=bool), DataTypeError, "dtype bool, but this bundle's model reads numbers"),
        (np.array([["a"] * 100] * 6)[None], DataTypeError, "dtype <U1"),
        (["walking"], DataTypeError, "X holds text, but this bundle's model reads float tensors"),
        (np.empty((0, 6, 100)), DataError, "X is empty"),
    ],
)
def test_wrong_inputs_get_a_typed_error_saying_what_was_expected(spec, X, error, message):
    with pytest.raises(error, match=message):
        check_tensors(X, spec)


def test_nan_or_inf_in_a_window_is_refused_naming_the_example(spec, basic_motions):
    X = basic_motions["user"][0][:4].copy()
    X[2, 3, 50], X[3, 0, 0] = np.nan, np.inf
    with pytest.raises(DataError, match=r"NaN or inf in 2 example\(s\) \(first: X\[2\]\)"):
        check_tensors(X, spec)


def test_windows_of_other_lengths_are_centre_cropped_or_padded_with_the_server_mean(spec, basic_motions):
    X = basic_motions["user"][0][:2]
    longer = np.concatenate([X, X], axis=2)  # 200 steps: the centre 100 are steps 50..149
    np.testing.assert_array_equal(check_tensors(longer, spec), longer[..., 50:150].astype(np.float32))
    shorter = check_tensors([X[0][:, :80], X[1]], spec)  # a list may mix lengths
    assert shorter.shape == (2, 6, 100)
    np.testing.assert_array_equal(shorter[0, :, 10:90], X[0][:, :80].astype(np.float32))
    np.testing.assert_allclose(shorter[0, :, :10], np.repeat(np.array(spec.channel_mean, np.float32)[:, None], 10, 1))


def test_the_exact_policy_refuses_another_length(spec):
    exact = dataclasses.replace(spec, length_policy="exact")
    with pytest.raises(DataError, match=r"expects \(n, 6, 100\)"):
        check_tensors(np.zeros((1, 6, 90)), exact)
    with pytest.raises(DataError, match="expects exactly 100"):
        fit_length(np.zeros((1, 6, 90), np.float32), exact)


def test_a_manifest_whose_statistics_do_not_match_its_channels_is_refused(sensor_bundle):
    data = json.loads((sensor_bundle / "manifest.json").read_text())
    data["input"]["channel_std"] = data["input"]["channel_std"][:5]
    with pytest.raises(BundleError, match=r"one value per channel \(6, tensor_shape\[0\]\)"):
        Manifest.from_dict(data)


def test_an_image_bundle_no_longer_advises_clipping_floats_to_uint8(effnet_bundle, basic_motions):
    p = Personalizer.from_bundle(effnet_bundle)
    with pytest.raises(DataTypeError, match="need a tensor bundle") as caught:
        p.predict(np.zeros((1, 32, 32, 3), np.float32))
    assert "np.clip" not in str(caught.value)


def test_personalizing_to_a_user_with_swapped_axes_recovers_accuracy(sensor_bundle, shifted_user, tmp_path):
    (X_own, y_own), (X_test, y_test) = shifted_user
    p = Personalizer.from_bundle(sensor_bundle)
    shipped = p.score(X_test, y_test)
    p.fit(X_own, y_own)
    assert p.report_.accepted
    assert p.score(X_test, y_test) >= shipped + 0.2, "the user's own 20 windows should lift accuracy a lot"

    p.save(tmp_path / "state")
    restored = Personalizer.load(tmp_path / "state")
    np.testing.assert_array_equal(restored.predict_proba(X_test), p.predict_proba(X_test))
    restored.rollback(0)
    assert restored.score(X_test, y_test) == pytest.approx(shipped)


def test_features_of_a_window_seen_before_come_from_the_cache(sensor_bundle, basic_motions):
    X = basic_motions["user"][0][:8]
    p = Personalizer.from_bundle(sensor_bundle)
    first = p.transform(X)
    assert len(p.cache) == 8
    padded = np.concatenate([X[..., :10], X, X[..., -10:]], axis=2)  # cropped back to the same centre 100 steps
    np.testing.assert_array_equal(p.transform(padded), first)
    assert len(p.cache) == 8


def test_the_inference_model_takes_the_standardised_window(sensor_bundle, basic_motions, tmp_path):
    X = basic_motions["user"][0][:4]
    p = Personalizer.from_bundle(sensor_bundle)
    path = p.export_inference_model(tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = p.bundle.manifest.input
    x = ((X - np.array(spec.channel_mean)[:, None]) / np.array(spec.channel_std)[:, None]).astype(np.float32)
    probabilities = session.run(["probabilities"], {spec.input_names[0]: x})[0]
    np.testing.assert_allclose(probabilities, p.predict_proba(X), atol=1e-5)


shapes = st.lists(st.integers(0, 8), min_size=0, max_size=4).map(tuple)
dtypes = st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.bool_, np.complex64, np.object_])
values = st.sampled_from([0.0, 1.5, -3.0, np.nan, np.inf, 1e30])


def _array(shape: tuple[int, ...], dtype: type, value: float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or 1e30 cast to an integer: whatever comes is the input
        return np.full(shape, value).astype(dtype)


arrays = st.builds(_array, shapes, dtypes, values)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(X=arrays | st.lists(arrays, max_size=3) | st.text(max_size=5) | st.none())
def test_any_input_gets_probabilities_or_a_typed_error(sensor_personalizer, X):
    try:
        proba = sensor_personalizer.predict_proba(X)
    except EdgeftError:
        return
    assert proba.shape == (len(X), 4) and np.isfinite(proba).all()


@pytest.fixture(scope="module")
def sensor_personalizer(sensor_bundle):
    return Personalizer.from_bundle(sensor_bundle)
