"""Tensor backbones: float windows (channels x steps) or rows (features) in, one feature vector each out, numpy only.

The preprocessing is the bundle's (``input.tensor_shape``, ``channel_mean``, ``channel_std``, ``length_policy``):
a window of another length is cropped to its centre steps or padded at both ends with each channel's server
mean (or refused, under "exact"), then every channel is standardised with the server's statistics.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from device_runtime.image import ImageBackbone
from edgeft.errors import DataError
from edgeft.manifest import InputSpec


def fit_length(x: np.ndarray, spec: InputSpec, where: str = "X") -> np.ndarray:
    """Windows (n, channels, steps) at the bundle's number of steps, as its length policy says.

    Raises:
        DataError: the length differs and the policy is "exact".
    """
    if len(spec.tensor_shape) == 1 or x.shape[-1] == spec.tensor_shape[1]:
        return x
    steps, have = spec.tensor_shape[1], x.shape[-1]
    if spec.length_policy == "exact":
        raise DataError(
            f"{where} has windows of {have} steps, but this bundle expects exactly {steps} (length_policy 'exact'); "
            f"cut the signal into windows of {steps} steps."
        )
    if have > steps:
        start = (have - steps) // 2
        return x[..., start : start + steps]
    before = (steps - have) // 2
    filled = np.empty((*x.shape[:-1], steps), np.float32)
    filled[...] = np.asarray(spec.channel_mean, np.float32)[:, None]
    filled[..., before : before + have] = x
    return filled


def preprocess(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Checked float32 examples (n, *tensor_shape) to the backbone's input: ``(x - mean) / std`` per channel."""
    mean, std = np.asarray(spec.channel_mean, np.float32), np.asarray(spec.channel_std, np.float32)
    if x.ndim == 3:
        mean, std = mean[:, None], std[:, None]
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


class TensorBackbone(ImageBackbone):
    """A tensor backbone's ONNX inference session: an image backbone's batching, this module's preprocessing."""

    def batch_feeds(self, examples: np.ndarray, batch_size: int = 32) -> Iterator[dict[str, np.ndarray]]:
        """The backbone's input feeds, one dict per batch (also used for INT8 calibration)."""
        for start in range(0, len(examples), batch_size):
            yield {self.input_name: preprocess(np.asarray(examples[start : start + batch_size]), self.spec)}
