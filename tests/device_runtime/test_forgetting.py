"""Personalizing on a few labels keeps the others: replay, the per-label guard, L2-SP on old bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.config import RuntimeConfig
from edgeft.errors import BundleError, ConfigError
from example_data import fashion_mnist

USER_TOPICS = ("business", "entertainment")


@pytest.fixture(scope="module")
def two_topics(bbc_splits):
    texts, labels = bbc_splits["user"]
    keep = [i for i, label in enumerate(labels) if label in USER_TOPICS]
    return [texts[i] for i in keep], [labels[i] for i in keep]


@pytest.fixture(scope="module")
def runs(minilm_bundle, two_topics, bbc_splits, tmp_path_factory):
    """The shipped head, then fits on two topics with the defaults and without replay, scored on all five."""
    runtime = RuntimeConfig(cache_dir=str(tmp_path_factory.mktemp("forgetting-features")))
    shipped = Personalizer.from_bundle(minilm_bundle, runtime=runtime)
    with_replay = Personalizer.from_bundle(minilm_bundle, runtime=runtime).fit(*two_topics)
    without = Personalizer.from_bundle(minilm_bundle, runtime=runtime).fit(*two_topics, replay_ratio=0.0)
    return {
        name: (p, p.evaluate(*bbc_splits["test"]))
        for name, p in (("shipped", shipped), ("replay", with_replay), ("no_replay", without))
    }


def test_the_exporter_ships_a_class_balanced_replay_set_of_head_features(minilm_bundle):
    bundle = Bundle.load(minilm_bundle)
    assert layout.REPLAY in bundle.manifest.files
    with np.load(bundle.file(layout.REPLAY)) as data:
        features, labels = data["features"], data["labels"]
    assert features.shape == (bundle.manifest.head.replay_examples, bundle.manifest.head.in_features)
    assert np.bincount(labels).tolist() == [3] * 5  # the 3 of 4 server articles a topic the shipped head trained on


def test_a_tampered_replay_set_is_refused(bundle_copy):
    with np.load(bundle_copy / layout.REPLAY) as data:
        arrays = dict(data)
    arrays["labels"] = np.zeros_like(arrays["labels"])
    np.savez(bundle_copy / layout.REPLAY, **arrays)
    with pytest.raises(BundleError, match="head/replay.npz does not match its checksum"):
        Bundle.load(bundle_copy)


def test_replay_keeps_the_labels_the_user_gave_no_examples_of(runs):
    shipped, replay = runs["shipped"][1], runs["replay"][1]
    assert runs["replay"][0].report_.accepted
    # 3 replay rows a topic (the 4th is a guard row) hold the other topics within 3 points here, not 1.
    assert replay["accuracy"] >= shipped["accuracy"] - 0.03
    for i in (2, 3, 4):  # politics, sports, tech: no user examples; 3 replay rows each hold them within 15 points of F1
        assert replay["per_class_f1"][i] >= shipped["per_class_f1"][i] - 0.15


def test_replay_rows_train_but_never_count_as_the_users_examples(runs, two_topics):
    report = runs["replay"][0].report_
    assert report.examples == len(two_topics[0])
    assert report.train_examples + report.validation_examples == len(two_topics[0])
    assert report.replay_examples > 0


def test_with_one_guard_row_a_label_the_guard_sees_forgetting_but_chance_explains_it(runs):
    # The session's bundle has 4 server articles a topic, so 1 a topic is held out for the guard (docs/device.md):
    # a label wholly forgotten needs 4 guard rows to count as lost. The verdicts still show what fell.
    r = runs["no_replay"][0].report_
    fell = [v for v in r.verdicts if v["source"] == "guard" and v["label"] != "all" and v["new"] < v["current"]]
    assert fell and {v["label"] for v in fell} <= {"politics", "sports", "tech"}
    assert all(v["rows"] == 1 and v["p"] == pytest.approx(0.5) and v["kept"] for v in fell)


def test_without_guard_rows_in_the_bundle_the_report_says_other_labels_were_not_checked(bundle_copy, two_topics):
    manifest = json.loads((bundle_copy / layout.MANIFEST).read_text())
    del manifest["files"][layout.GUARD]
    (bundle_copy / layout.GUARD).unlink()
    (bundle_copy / layout.MANIFEST).write_text(json.dumps(manifest))
    p = Personalizer.from_bundle(bundle_copy).fit(*two_topics, epochs=2)
    assert p.guard is None and not p.report_.labels_checked and p.report_.guard_examples == 0
    assert "could not be checked" in p.report_.reason and "could not be checked" in p.report_.validated_on


def test_l2sp_on_a_bundle_exported_without_it_is_a_config_error(bundle_copy, two_topics):
    manifest = json.loads((bundle_copy / layout.MANIFEST).read_text())
    manifest["head"]["l2sp"] = False  # as bundles exported before L2-SP say
    (bundle_copy / layout.MANIFEST).write_text(json.dumps(manifest))
    p = Personalizer.from_bundle(bundle_copy)
    assert p.fit(*two_topics, epochs=1).report_.l2sp == 0.0  # the default still works
    with pytest.raises(ConfigError, match="exported without L2-SP"):
        p.fit(*two_topics, epochs=1, l2sp=0.1)


def test_effnet_personalized_on_three_classes_never_loses_the_other_seven(effnet_bundle, fashion):
    # With 4 server images per class, this run's raw head is worse overall (on 300 held-out images: 0.590 against the
    # shipped 0.617, its own three classes 0.922 -> 0.933), and the guard keeps the shipped head; either way, the head
    # in use after the fit must not have lost the labels the user gave no examples of.
    classes = ["bag", "sneaker", "trouser"]
    images, labels = fashion_mnist("train", per_class=8, seed=1)
    keep = [i for i, label in enumerate(labels) if label in classes]
    test_images, test_labels = fashion_mnist("test", per_class=6, seed=1)
    shipped = Personalizer.from_bundle(effnet_bundle)
    before = shipped.evaluate(test_images, test_labels)
    after = Personalizer.from_bundle(effnet_bundle).fit(images[keep], [labels[i] for i in keep])
    assert after.report_.replay_examples > 0 and after.report_.guard_examples > 0
    assert after.evaluate(test_images, test_labels)["accuracy"] >= before["accuracy"] - 0.02
    assert shipped.labels == after.labels and set(classes) <= set(after.labels)
