"""Every entry point refuses bad input with a typed EdgeftError that says what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest

from device_runtime.validation import check_features
from edgeft.errors import DataError, DataTypeError, EdgeftError, NotFittedError


@pytest.fixture
def p(make_personalizer):
    return make_personalizer()


@pytest.mark.parametrize("method", ["fit", "partial_fit", "evaluate"])
def test_training_and_evaluation_refuse_bad_examples(p, user, method):
    texts, labels = user
    call = getattr(p, method)
    with pytest.raises(DataError, match="X is empty: at least one example is needed"):
        call([], [])
    with pytest.raises(DataError, match="X has 3 examples but y has 2 labels"):
        call(texts[:3], labels[:2])
    with pytest.raises(DataError, match=r"Label\(s\) 'weather' are not in the bundle's label set"):
        call(texts[:2], [labels[0], "weather"])
    with pytest.raises(DataTypeError, match="X\\[1\\] is int, but this bundle's model reads text"):
        call([texts[0], 42], labels[:2])
    with pytest.raises(DataTypeError, match="X must be a list of texts, got a single string"):
        call(texts[0], labels[:1])
    with pytest.raises(DataTypeError, match="y must be a list of labels, got int"):
        call(texts[:1], 3)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "transform"])
def test_prediction_refuses_bad_examples(p, method):
    with pytest.raises(DataError, match="X is empty"):
        getattr(p, method)([])
    with pytest.raises(DataTypeError, match="X\\[0\\] is bytes"):
        getattr(p, method)([b"raw bytes"])
    with pytest.raises(DataTypeError, match="got dict"):
        getattr(p, method)({"text": "a"})


def test_over_long_text_is_truncated_with_a_warning_that_counts_it(p):
    from device_runtime import TruncationWarning

    max_length = p.bundle.manifest.input.max_length
    with pytest.warns(TruncationWarning, match=f"1 of 2 texts were longer than {max_length} tokens"):
        labels = p.predict(["word " * (2 * max_length), "a short text"])
    assert len(labels) == 2


def test_features_with_nan_inf_wrong_shape_or_dtype_are_refused():
    good = np.zeros((2, 384), np.float32)
    assert check_features(good, 384).shape == (2, 384)
    with pytest.raises(DataError, match=r"NaN or inf in 1 row\(s\) \(first: row 1\)"):
        check_features(np.array([[0.0] * 384, [np.nan] + [0.0] * 383]), 384)
    with pytest.raises(DataError, match=r"has shape \(2, 10\), but the bundle expects \(n, 384\)"):
        check_features(np.zeros((2, 10)), 384)
    with pytest.raises(DataTypeError, match="must be a float array, got dtype <U1"):
        check_features(np.array([["a"] * 384]), 384)


def test_an_untrained_head_says_to_call_fit_first(bundle_copy, user, tmp_path):
    import json

    from device_runtime import Personalizer
    from edgeft.bundle import Bundle
    from edgeft.layout import MANIFEST

    manifest = json.loads((bundle_copy / MANIFEST).read_text())
    manifest["head"]["trained"] = False
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest))
    p = Personalizer(Bundle.load(bundle_copy))
    with pytest.raises(NotFittedError, match=r"shipped untrained; call fit\(X, y\)"):
        p.predict(user[0][:1])
    with pytest.raises(NotFittedError):
        p.export_inference_model(tmp_path / "model.onnx")


def test_a_state_of_a_newer_format_is_refused_naming_both_formats(p, tmp_path):
    from device_runtime import Personalizer

    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.json").write_text('{"format_version": 7}')
    with pytest.raises(EdgeftError, match="state format 7; this edgeft reads 2"):
        Personalizer.load(tmp_path / "state")


def test_no_onnxruntime_error_reaches_the_user(bundle_copy):
    from device_runtime import Personalizer
    from edgeft.bundle import Bundle, write_manifest
    from edgeft.config import RuntimeConfig
    from edgeft.errors import StateError
    from edgeft.layout import CHECKPOINT

    # A head checkpoint with a valid checksum that ORT cannot parse: every check before ORT passes, ORT itself fails.
    manifest = Bundle.load(bundle_copy).manifest
    (bundle_copy / CHECKPOINT).write_bytes(b"not an ORT checkpoint")
    write_manifest(bundle_copy, manifest)
    with pytest.raises(StateError, match=r"ONNX Runtime could not load the head from .*checkpoint") as caught:
        Personalizer.from_bundle(bundle_copy, runtime=RuntimeConfig(engine="ort")).predict(["a headline"])
    assert "[ONNXRuntimeError]" in str(caught.value.__cause__), "ORT itself failed, and the user sees a StateError"
