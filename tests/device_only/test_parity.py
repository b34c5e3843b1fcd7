"""The same bundles give the same answers here (plain onnxruntime, step graphs) as in the exporting environment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft.config import RuntimeConfig

pytestmark = pytest.mark.filterwarnings("ignore::device_runtime.engines.base.EngineFallbackWarning")

#: FP32 graphs agree this closely between ORT 1.19.2 and ORT 1.32 (and their numpy builds).
ATOL = 1e-4
#: ORT's INT8 MatMulInteger kernels changed between 1.19.2 and 1.32: MiniLM's INT8 features differ by up to
#: about 0.02 (0.008 in probabilities, measured), with or without graph optimizations. The labels do not change.
INT8_TEXT_ATOL = 0.02


@pytest.fixture(scope="module")
def trained(reference: dict, tmp_path_factory: pytest.TempPathFactory) -> Personalizer:
    """The FP32 bundle's head trained here by engine="auto" (the step graphs) as the reference run was (numpy)."""
    personalizer = Personalizer.from_bundle(reference["bundles"]["fp32"], runtime=RuntimeConfig(engine="auto"))
    return personalizer.fit(reference["user_texts"], reference["user_labels"], **reference["fit"])


def test_an_fp32_bundle_predicts_what_it_predicted_where_it_was_exported(reference):
    proba = Personalizer.from_bundle(reference["bundles"]["fp32"]).predict_proba(reference["texts"])
    np.testing.assert_allclose(proba, reference["proba"]["fp32"], atol=ATOL)


def test_the_int8_image_bundle_predicts_what_it_predicted_where_it_was_exported(reference, images):
    proba = Personalizer.from_bundle(reference["bundles"]["image"]).predict_proba(images)
    np.testing.assert_allclose(proba, reference["proba"]["image"], atol=ATOL)


def test_the_int8_text_bundle_gives_the_same_labels_and_near_probabilities(reference):
    proba = Personalizer.from_bundle(reference["bundles"]["int8"]).predict_proba(reference["texts"])
    expected = np.asarray(reference["proba"]["int8"])
    assert (proba.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_allclose(proba, expected, atol=INT8_TEXT_ATOL)


def test_step_graph_head_training_repeats_the_exporting_environments_numpy_run(trained, reference):
    assert trained.report_.engine == "step" and trained.current_version == 1
    np.testing.assert_allclose(trained.predict_proba(reference["texts"]), reference["numpy_fit_proba"], atol=ATOL)


def test_a_saved_state_loads_with_the_same_predictions(trained, reference, tmp_path: Path):
    trained.save(tmp_path / "state")
    loaded = Personalizer.load(tmp_path / "state")
    assert loaded.current_version == 1 and loaded.engine.value == "step"
    np.testing.assert_allclose(loaded.predict_proba(reference["texts"]), trained.predict_proba(reference["texts"]), atol=1e-6)


@pytest.mark.parametrize("name", ["cut", "lora"])
def test_a_last_block_and_a_lora_bundle_train_on_plain_onnxruntime_as_where_they_were_exported(reference, name):
    personalizer = Personalizer.from_bundle(reference["bundles"][name])
    personalizer.fit(reference["user_texts"], reference["user_labels"], **reference["fit"])
    assert personalizer.report_.engine == "step" and personalizer.current_version == 1
    np.testing.assert_allclose(personalizer.predict_proba(reference["texts"]), reference["step_fit_proba"][name], atol=ATOL)


def test_a_vision_last_blocks_bundle_trains_its_convolutions_on_plain_onnxruntime_as_where_it_was_exported(
    reference, reference_dir, images
):
    personalizer = Personalizer.from_bundle(reference["bundles"]["image-cut"])
    personalizer.fit(np.load(reference_dir / "user_images.npy"), reference["user_image_labels"], **reference["fit"])
    assert personalizer.report_.engine == "step" and personalizer.current_version == 1
    np.testing.assert_allclose(personalizer.predict_proba(images), reference["image_cut_fit_proba"], atol=ATOL)
