"""The Personalizer on a real MiniLM bundle: it personalizes the head, and only the head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft import layout
from edgeft.errors import DataError, DataTypeError


@pytest.fixture(scope="module")
def personalized(minilm_bundle: Path, bbc_splits) -> Personalizer:
    return Personalizer.from_bundle(minilm_bundle).fit(*bbc_splits["user"])


def test_fit_on_user_data_beats_the_shipped_head(minilm_bundle: Path, personalized: Personalizer, bbc_splits) -> None:
    shipped = Personalizer.from_bundle(minilm_bundle).evaluate(*bbc_splits["test"])
    after = personalized.evaluate(*bbc_splits["test"])
    assert after["accuracy"] > shipped["accuracy"] + 0.05
    assert after["macro_f1"] > shipped["macro_f1"] + 0.05


def test_fit_trains_the_head_alone_in_the_training_graph_and_the_features_stay(
    minilm_bundle: Path, bbc_splits, read_checkpoint, tmp_path
) -> None:
    texts = bbc_splits["test"][0][:6]
    shipped = read_checkpoint(minilm_bundle / layout.CHECKPOINT)
    p = Personalizer.from_bundle(minilm_bundle)
    features = Personalizer.from_bundle(minilm_bundle).transform(texts)  # another instance: no shared feature cache
    p.fit(*bbc_splits["user"], epochs=2)
    p.save_head_checkpoint(tmp_path / "checkpoint")
    trained = read_checkpoint(tmp_path / "checkpoint")
    head = p.bundle.manifest.head
    # The L2-SP term's settings are frozen inputs of the loss, not weights (a head checkpoint is its own anchor).
    assert {n for n in trained if n.startswith("l2sp.")} == {"l2sp.strength", "l2sp.anchor.head.weight"}
    assert not any(trains for n, (trains, _) in trained.items() if n.startswith("l2sp."))
    trained = {n: v for n, v in trained.items() if not n.startswith("l2sp.")}
    # No backbone weight is in the graph ORT trains: the head's parameters are all of it.
    assert set(trained) == {"head.weight", "head.bias"} == set(head.trainable) | set(head.frozen)
    for name, (trains, values) in trained.items():
        assert trains == (name in head.trainable), name
        assert np.array_equal(values, shipped[name][1]) != trains, f"{name}: trained weights change, frozen ones stay"
    np.testing.assert_array_equal(p.transform(texts), features)  # the frozen backbone computes what it did


def test_fit_loss_falls_over_epochs(personalized: Personalizer) -> None:
    assert personalized.history_[-1] < personalized.history_[0] / 2


def test_predict_returns_labels_of_the_bundle(personalized: Personalizer, bbc_splits) -> None:
    texts, _ = bbc_splits["test"]
    predicted = personalized.predict(texts[:7])
    assert predicted.shape == (7,)
    assert set(predicted) <= set(personalized.labels)


def test_predict_proba_rows_are_distributions_matching_predict(personalized: Personalizer, bbc_splits) -> None:
    texts = bbc_splits["test"][0][:9]
    proba = personalized.predict_proba(texts)
    assert proba.shape == (9, 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert list(np.asarray(personalized.labels)[proba.argmax(axis=1)]) == list(personalized.predict(texts))


def test_evaluate_reports_metrics_and_confusion_matrix(personalized: Personalizer, bbc_splits) -> None:
    report = personalized.evaluate(*bbc_splits["test"])
    assert {"loss", "accuracy", "macro_precision", "macro_recall", "macro_f1", "confusion_matrix"} <= set(report)
    assert np.sum(report["confusion_matrix"]) == len(bbc_splits["test"][0])
    assert personalized.score(*bbc_splits["test"]) == report["accuracy"]


def test_save_then_load_gives_the_same_predictions(minilm_bundle: Path, bbc_splits, tmp_path: Path) -> None:
    # A fresh personalizer on both sides: an INT8 backbone's features depend a little on which texts
    # shared a batch, and a personalizer that has already embedded these texts would reuse its cache.
    texts = bbc_splits["test"][0][:20]
    personalized = Personalizer.from_bundle(minilm_bundle).fit(*bbc_splits["user"], epochs=3)
    personalized.save(tmp_path / "state")
    restored = Personalizer.load(tmp_path / "state")
    np.testing.assert_allclose(restored.predict_proba(texts), personalized.predict_proba(texts), rtol=1e-6)
    assert restored.history_ == personalized.history_


def test_fit_restarts_from_the_shipped_head_but_partial_fit_continues(minilm_bundle: Path, bbc_splits) -> None:
    texts, labels = bbc_splits["user"]
    once = Personalizer.from_bundle(minilm_bundle).fit(texts, labels, epochs=1).head_parameters()
    twice = Personalizer.from_bundle(minilm_bundle).fit(texts, labels, epochs=1).fit(texts, labels, epochs=1)
    continued = Personalizer.from_bundle(minilm_bundle).fit(texts, labels, epochs=1).partial_fit(texts, labels, epochs=1)
    np.testing.assert_allclose(twice.head_parameters()["head.weight"], once["head.weight"], rtol=1e-6)
    assert not np.allclose(continued.head_parameters()["head.weight"], once["head.weight"])


def test_saving_again_keeps_exactly_one_checkpoint(personalized: Personalizer, bbc_splits, tmp_path: Path) -> None:
    personalized.save(tmp_path / "state")
    personalized.partial_fit(*bbc_splits["user"], epochs=1)
    personalized.save(tmp_path / "state")
    assert len(list((tmp_path / "state").glob("*.ckpt"))) == 1


@pytest.mark.parametrize(
    "X, y, error, message",
    [
        ([], [], DataError, "X is empty"),
        (["a", "b"], ["tech"], DataError, "X has 2 examples but y has 1 labels"),
        (["a"], ["weather"], DataError, "'weather' are not in the bundle's label set"),
        ("one text", ["tech"], DataTypeError, "got a single string"),
        ([b"bytes"], ["tech"], DataTypeError, r"X\[0\] is bytes, but this bundle's model reads text"),
    ],
)
def test_bad_training_input_is_a_typed_error(personalized: Personalizer, X, y, error, message) -> None:
    with pytest.raises(error, match=message):
        personalized.partial_fit(X, y)
