"""A torch vision backbone (EfficientNet-Lite0) to a bundle that the device personalizes on images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from device_runtime import Personalizer
from edgeft.bundle import Bundle
from edgeft.errors import DataError, DataTypeError, ExportError


def test_manifest_records_the_preprocessing_and_parity(effnet_bundle):
    m = Bundle.load(effnet_bundle).manifest
    assert m.input.modality == "image"
    assert m.input.image_size == [224, 224]
    assert m.input.pixel_mean == [127.0] * 3 and m.input.pixel_std == [128.0] * 3
    assert (m.input.channel_order, m.input.layout) == ("RGB", "NCHW")
    assert m.backbone.feature_size == 1280
    assert m.metrics["parity_max_abs_diff"] < 1e-4
    assert "tokenizer.json" not in m.files


def test_device_personalizes_on_grey_and_rgb_uint8_images(effnet_bundle, fashion):
    images, labels = fashion["test"]
    personalizer = Personalizer.from_bundle(effnet_bundle)
    assert personalizer.score(images, labels) > 0.3  # 10 classes: chance is 0.1
    personalizer.fit(images, labels, epochs=20, validation_fraction=0.0, accept="always")
    assert personalizer.score(images, labels) == 1.0  # the head fits its own examples
    rgb = np.repeat(images[..., None], 3, axis=-1)
    fresh = Personalizer.from_bundle(effnet_bundle)  # none cached: both batches go through the INT8 backbone alike
    np.testing.assert_allclose(fresh.transform(rgb[:4]), fresh.transform(images[:4]), atol=1e-5)
    assert set(personalizer.predict(list(images[:3]))) <= set(personalizer.labels)


def test_device_rejects_images_it_cannot_read(effnet_bundle, fashion):
    images, _labels = fashion["test"]
    personalizer = Personalizer.from_bundle(effnet_bundle)
    with pytest.raises(DataTypeError, match="dtype float64, but this bundle's model reads uint8"):
        personalizer.predict(images.astype(np.float64))
    with pytest.raises(DataError, match=r"shape \(2, 28, 28, 4\), but an image bundle expects"):
        personalizer.predict(np.zeros((2, 28, 28, 4), np.uint8))
    with pytest.raises(DataTypeError, match="X holds text, but this bundle's model reads images"):
        personalizer.predict(["a text"])
    with pytest.raises(DataError, match="different shapes"):
        personalizer.predict([images[0], np.zeros((32, 32), np.uint8)])
    with pytest.raises(DataError, match="a single number"):
        personalizer.predict(np.array(7, np.uint8))


def test_a_module_without_pooled_features_is_refused_and_nothing_is_written(tmp_path):
    conv = torch.nn.Conv2d(3, 8, 3)
    with pytest.raises(ExportError, match=r"returns \(1, 8, 30, 30\).*pool inside the module"):
        from export import BackboneOptions, ServerData, export_bundle

        export_bundle(
            conv,
            tmp_path / "bundle",
            data=ServerData(label_set=["a", "b"]),
            backbone=BackboneOptions(example_input=torch.zeros(1, 3, 32, 32)),
        )
    assert not (tmp_path / "bundle").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary folder left behind either


def test_manifest_of_an_image_bundle_is_plain_json_with_every_image_field(effnet_bundle):
    data = json.loads((effnet_bundle / "manifest.json").read_text())
    assert {"image_size", "pixel_mean", "pixel_std", "channel_order", "layout"} <= set(data["input"])
