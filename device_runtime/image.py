"""Vision backbones: uint8 pixels in, one feature vector per image out, numpy only.

The preprocessing (size, scaling, channel order, axis order) comes from the
bundle's manifest, written by the exporter from the model's training recipe,
so a device reproduces it exactly without torch or PIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from device_runtime.sessions import BackboneSession
from edgeft.manifest import InputSpec


def preprocess(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Checked uint8 images (n, h, w, c) to the backbone's float32 input.

    Grey images become RGB by repeating the channel; images are resized
    (bilinear, half-pixel centres as in torch and PIL), scaled per channel with
    ``(x - mean) / std``, reordered to BGR where the backbone wants it, and
    transposed to NCHW unless the backbone reads NHWC.

    Args:
        images: uint8 array of shape (n, height, width, 1 or 3), RGB order.
        spec: the bundle's input spec (image fields set).

    Returns:
        float32 array in the backbone's layout.
    """
    x = images.astype(np.float32)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    x = resize_bilinear(x, *spec.image_size)
    x = (x - np.asarray(spec.pixel_mean, np.float32)) / np.asarray(spec.pixel_std, np.float32)
    if spec.channel_order == "BGR":
        x = x[..., ::-1]
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


def resize_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (n, h, w, c) images; separable, so it costs two small gathers per axis."""
    if x.shape[1:3] == (height, width):
        return x
    x = _resize_axis(x, height, axis=1)
    return _resize_axis(x, width, axis=2)


def _resize_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    n_in = x.shape[axis]
    # Half-pixel centres: output pixel i samples input position (i + 0.5) * scale - 0.5.
    pos = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    shape = [1] * x.ndim
    shape[axis] = size
    w = (pos - lo).astype(np.float32).reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w


class ImageBackbone(BackboneSession):
    """A vision backbone's ONNX inference session plus its numpy preprocessing (arguments as for :class:`BackboneSession`)."""

    @property
    def input_name(self) -> str:
        return self.spec.input_names[0]

    def batch_feeds(self, images: np.ndarray, batch_size: int = 32) -> Iterator[dict[str, np.ndarray]]:
        """The backbone's input feeds, one dict per batch (also used for INT8 calibration)."""
        for start in range(0, len(images), batch_size):
            yield {self.input_name: preprocess(np.asarray(images[start : start + batch_size]), self.spec)}

    def features(
        self,
        images: np.ndarray,
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Feature vectors, shape (len(images), feature_size), float32.

        Args:
            images: checked uint8 images, shape (n, height, width, channels).
        """
        out = []
        for feeds in self.batch_feeds(images, batch_size):
            out.append(self.run(feeds))
            if progress:
                progress(min(sum(len(o) for o in out), len(images)), len(images))
        return np.concatenate(out).astype(np.float32, copy=False)
