"""Labels added on the device, in spare output slots; per-call settings stay per call."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from device_runtime import Personalizer
from edgeft import layout
from edgeft.config import to_dict
from edgeft.errors import DataError

NEW = "weather"  # the user's own category: BBC tech articles relabelled, so the head has something to learn


@pytest.fixture(scope="module")
def with_new_label(bbc_splits):
    texts, labels = bbc_splits["user"]
    return texts, [NEW if label == "tech" else label for label in labels]


@pytest.mark.parametrize("engine", ["ort", "numpy"])
def test_a_new_label_works_through_fit_predict_save_load_rollback_and_export(
    make_personalizer, with_new_label, bbc_splits, engine, tmp_path
):
    texts, labels = with_new_label
    p = make_personalizer(engine=engine).fit(texts, labels, new_labels="add")
    assert p.report_.accepted and p.report_.added_labels == [NEW]
    assert p.labels[-1] == NEW and p.free_label_slots == p.bundle.manifest.head.spare_labels - 1
    tech = [t for t, y in zip(*bbc_splits["test"]) if y == "tech"]
    assert np.mean(p.predict(tech) == NEW) > 0.3  # measured 0.47 (tech keeps its own slot, so both compete)
    assert p.predict_proba(tech).shape == (len(tech), 6)
    assert p.evaluate(texts, labels)["labels"][-1] == NEW
    p.save(tmp_path / "state")
    loaded = Personalizer.load(tmp_path / "state", runtime=p.runtime)
    assert loaded.labels == p.labels
    np.testing.assert_allclose(loaded.predict_proba(tech), p.predict_proba(tech), atol=1e-5)
    loaded.partial_fit(texts, labels, epochs=2, accept="always")
    assert loaded.rollback(1).labels[-1] == NEW and np.mean(loaded.predict(tech) == NEW) > 0.3
    assert NEW not in loaded.rollback(0).predict(tech), "the shipped head never predicts a slot it had masked"
    model = p.export_inference_model(tmp_path / "model.onnx")
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(p.bundle.file(layout.TOKENIZER)))
    tokenizer.enable_truncation(128)
    ids = tokenizer.encode(tech[0]).ids
    logits = session.run(["logits"], {"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)), np.int64)})[0]
    assert logits.shape == (1, 6) and session.get_modelmeta().custom_metadata_map["edgeft.labels"].endswith(NEW)


def test_an_unknown_label_without_permission_says_how_to_add_it(make_personalizer, with_new_label):
    p = make_personalizer()
    with pytest.raises(DataError, match=r'new_labels="add".*4 free output slot'):
        p.fit(*with_new_label)
    assert p.labels == p.bundle.manifest.labels


def test_more_new_labels_than_free_slots_is_an_error_naming_them(make_personalizer, user):
    p = make_personalizer()
    texts, labels = user
    many = [f"mine{i % 5}" for i in range(len(labels))]
    with pytest.raises(DataError, match=r"5 new label\(s\).*4 free.*--spare-labels"):
        p.fit(texts, many, new_labels="add")
    assert p.free_label_slots == 4 and p.add_labels(["a", "b"]).free_label_slots == 2


@pytest.mark.parametrize("engine", ["ort", "numpy"])
def test_unclaimed_slots_leave_training_as_shipped(make_personalizer, user, engine):
    from device_runtime.labels import SPARE_BIAS

    p = make_personalizer(engine=engine).fit(*user, accept="always")  # weight decay moves every parameter it trains
    head, spare = p.head_parameters(), slice(len(p.labels), None)
    assert p.bundle.manifest.head.spare_labels == 4
    assert np.all(head["head.weight"][spare] == 0) and np.all(head["head.bias"][spare] == np.float32(SPARE_BIAS))
    assert np.any(head["head.weight"][: len(p.labels)] != 0)


def test_a_refused_fit_gives_its_claimed_slots_back(make_personalizer, user, with_new_label):
    p = make_personalizer()
    p.fit(*with_new_label, new_labels="add", lr=1e15)  # diverges: never accepted
    assert not p.report_.accepted and "not finite" in p.report_.reason and p.report_.added_labels == []
    assert NEW not in p.labels and p.free_label_slots == p.bundle.manifest.head.spare_labels


def test_per_call_overrides_change_neither_the_config_nor_the_saved_state(make_personalizer, user, tmp_path):
    p = make_personalizer()
    before = to_dict(p.config)
    p.fit(*user, epochs=2, accept="always")
    assert p.report_.config["epochs"] == 2 and p.report_.epochs == 2
    assert to_dict(p.config) == before
    p.save(tmp_path / "state")
    assert to_dict(Personalizer.load(tmp_path / "state").config) == before
    p.fit(*user, epochs=1, lr=1e-6)
    assert p.report_.config["accept"] == "if_better"
