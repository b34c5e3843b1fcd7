"""The device's numpy preprocessing matches what torch does with the same recipe."""

from __future__ import annotations

import numpy as np
import torch

from device_runtime.image import preprocess
from edgeft.manifest import InputSpec


def _spec(**changes) -> InputSpec:
    values = {
        "modality": "image",
        "input_names": ["pixel_values"],
        "image_size": [224, 224],
        "pixel_mean": [127.0] * 3,
        "pixel_std": [128.0] * 3,
        "channel_order": "RGB",
        "layout": "NCHW",
    }
    return InputSpec(**{**values, **changes})


def test_resize_and_scaling_match_torch_bilinear():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 28, 40, 3), dtype=np.uint8)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(images).permute(0, 3, 1, 2).float(), size=(224, 224), mode="bilinear", align_corners=False
    )
    expected = ((expected - 127) / 128).numpy()
    got = preprocess(images, _spec())
    assert got.shape == (2, 3, 224, 224) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_grey_becomes_rgb_and_bgr_nhwc_reorder():
    grey = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
    nchw = preprocess(grey, _spec(image_size=[4, 4]))
    assert nchw.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(nchw[:, 0], nchw[:, 2])
    colour = np.zeros((1, 2, 2, 3), np.uint8)
    colour[..., 0] = 255  # pure red
    nhwc = preprocess(
        colour, _spec(image_size=[2, 2], channel_order="BGR", layout="NHWC", pixel_mean=[0.0] * 3, pixel_std=[255.0] * 3)
    )
    assert nhwc.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(nhwc[0, 0, 0], [0.0, 0.0, 1.0])  # red is last in BGR
