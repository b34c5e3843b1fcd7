"""A start that does not depend on the skew: a closed-form head from statistics the devices add up.

A linear head on frozen features is a convex problem whose ridge (or shared-covariance Gaussian, LDA)
solution depends on the data only through sums: the Gram matrix of the features (with a constant 1
appended, for the bias) and, per label, the feature sums and the count. Each device sends its sums once;
the server adds them and solves, and gets the head a central fit on all devices' rows would give,
however the labels are spread (Fed3R; federated nearest-class-mean). Only these aggregates cross, never
an example or a feature vector.

With differential privacy on, each device clips every feature vector to ``feature_norm`` and adds Gaussian
noise of standard deviation ``noise_multiplier`` times the sums' L2 sensitivity to what it sends (local
noise: the server never sees a device's exact sums). :func:`epsilon` converts that one release per
device into an (epsilon, delta) guarantee for each of its examples.

This module needs numpy only (devices and server both use it).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

import numpy as np

from device_runtime.head_graph import LINEAR_LAYERS
from edgeft.errors import ConfigError, DataError

LINEAR = LINEAR_LAYERS[0]  # a closed form fits one linear layer: (weight, bias)


class Start(str, enum.Enum):
    """Where the federated rounds start from."""

    SHIPPED = "shipped"  # the bundle's head: the rounds alone must find the fleet's head
    RIDGE = "ridge"  # ridge regression onto one-hot labels, logits scaled (RIDGE_SCALE)
    GAUSSIAN = "gaussian"  # shared-covariance Gaussian classes (LDA): logits are log-posteriors


# Ridge fits one-hot targets, so its outputs sit in about [0, 1]; as logits that is a near-uniform softmax
# whose loss the guard would read as a bad head. This factor turns them into logits of a usual scale.
RIDGE_SCALE = 10.0


@dataclasses.dataclass(frozen=True)
class Statistics:
    """Sums over labelled feature vectors ``x`` with a 1 appended (``z = [x, 1]``): all a closed-form head needs.

    ``gram`` is sum z z^T, shape (d + 1, d + 1); ``sums[k]`` is the sum of z over label k's rows, shape
    (labels, d + 1), whose last column is the label's count. Statistics add: a fleet's are its devices' sum.
    """

    gram: np.ndarray
    sums: np.ndarray

    def __add__(self, other: Statistics) -> Statistics:
        return Statistics(self.gram + other.gram, self.sums + other.sums)

    def __sub__(self, other: Statistics) -> Statistics:
        return Statistics(self.gram - other.gram, self.sums - other.sums)

    @property
    def counts(self) -> np.ndarray:
        """Rows per label (noisy, and possibly fractional, where privacy added noise)."""
        return self.sums[:, -1]

    def arrays(self) -> dict[str, np.ndarray]:
        """As named arrays (what crosses to the server)."""
        return {"gram": self.gram, "sums": self.sums}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], features: int, labels: int) -> Statistics:
        """Statistics received from a device, checked for shape and finiteness.

        Raises:
            DataError: a missing array, another shape, or a NaN or infinite value.
        """
        shapes = {"gram": (features + 1, features + 1), "sums": (labels, features + 1)}
        for name, shape in shapes.items():
            value = arrays.get(name)
            if value is None or np.shape(value) != shape:
                got = "nothing" if value is None else f"shape {np.shape(value)}"
                raise DataError(f"The statistics' {name!r} must have shape {shape}, got {got}.")
            if not np.all(np.isfinite(value)):
                raise DataError(f"The statistics' {name!r} hold NaN or infinite values.")
        return cls(np.asarray(arrays["gram"], np.float64), np.asarray(arrays["sums"], np.float64))


@dataclasses.dataclass(frozen=True)
class StatisticsNoise:
    """Local differential privacy for the statistics one device sends (once per run)."""

    noise_multiplier: float  # noise standard deviation in units of the sums' L2 sensitivity
    feature_norm: float  # every feature vector is clipped to this L2 norm first (which bounds the sensitivity)

    @property
    def sensitivity(self) -> float:
        """L2 change of (gram, sums) when one row is added or removed: ||z||^2 and ||z||, z = [x, 1] clipped."""
        squared = self.feature_norm**2 + 1.0
        return math.sqrt(squared**2 + squared)

    @property
    def sigma(self) -> float:
        """The standard deviation of the Gaussian noise added to every entry."""
        return self.noise_multiplier * self.sensitivity


def device_statistics(
    features: np.ndarray, targets: np.ndarray, labels: int, noise: StatisticsNoise | None = None, seed: int | None = None
) -> Statistics:
    """One device's statistics, with local noise where ``noise`` is given.

    Args:
        features: the device's feature vectors, shape (n, d).
        targets: their label indices, each in [0, labels).
        labels: how many labels the head has.
        noise: clip each row and add Gaussian noise (privacy on); None: exact sums.
        seed: the noise's seed; None (what devices use): fresh entropy from the OS, so that nobody can
            replay the draw and subtract the noise.

    Raises:
        DataError: targets out of range or of another length.
    """
    x = np.asarray(features, np.float64)
    targets = np.asarray(targets)
    if len(targets) != len(x) or (len(targets) and (targets.min() < 0 or targets.max() >= labels)):
        raise DataError(f"targets must be {len(x)} label indices in [0, {labels}).")
    if noise is not None:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x * np.minimum(1.0, noise.feature_norm / np.maximum(norms, 1e-12))
    z = np.hstack([x, np.ones((len(x), 1))])
    onehot = np.zeros((len(x), labels))
    onehot[np.arange(len(x)), targets] = 1.0
    stats = Statistics(z.T @ z, onehot.T @ z)
    if noise is None:
        return stats
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.normal(0.0, noise.sigma, stats.gram.shape))
    symmetric = upper + np.triu(upper, 1).T  # one draw per released entry; the Gram matrix stays symmetric
    return Statistics(stats.gram + symmetric, stats.sums + rng.normal(0.0, noise.sigma, stats.sums.shape))


@dataclasses.dataclass(frozen=True)
class ClosedForm:
    """A closed-form head over the labels the statistics hold, and which labels it could not fit."""

    weight: np.ndarray  # (labels, d)
    bias: np.ndarray  # (labels,)
    fitted: np.ndarray  # bool per label: False where no row carried it (its shipped row is kept)

    def scaled(self, factor: float) -> ClosedForm:
        """The same head with its logits times ``factor`` (1 / a temperature): the same argmax, other confidences."""
        return ClosedForm(self.weight * factor, self.bias * factor, self.fitted)


def closed_form(stats: Statistics, kind: Start, shrinkage: float) -> ClosedForm:
    """The ridge or Gaussian (LDA) head the statistics determine.

    Args:
        stats: the fleet's summed statistics.
        kind: ``Start.RIDGE`` (penalty ``shrinkage`` times the mean feature variance, bias unpenalized) or
            ``Start.GAUSSIAN`` (the pooled within-label covariance shrunk by ``shrinkage`` toward a scaled identity).
        shrinkage: ridge's relative penalty (> 0), or LDA's shrinkage in (0, 1].

    Raises:
        ConfigError: ``kind`` is not a closed form, or no label has a row.
    """
    fitted = stats.counts >= 1.0
    if not fitted.any():
        raise ConfigError("The fleet's statistics hold no labelled row: no closed-form head can be fitted.")
    d = stats.gram.shape[0] - 1
    n = float(stats.gram[d, d])
    mean = stats.gram[:d, d] / n
    covariance = stats.gram[:d, :d] / n - np.outer(mean, mean)
    scale = max(float(np.trace(covariance)) / d, 1e-12)  # the mean feature variance: makes shrinkage scale-free
    if kind is Start.RIDGE:
        penalty = np.zeros(d + 1)
        penalty[:d] = shrinkage * scale * n
        solved = np.linalg.solve(stats.gram + np.diag(penalty), stats.sums.T).T
        return ClosedForm(RIDGE_SCALE * solved[:, :d], RIDGE_SCALE * solved[:, d], fitted)
    if kind is Start.GAUSSIAN:
        return _gaussian(stats, fitted, shrinkage, scale)
    raise ConfigError(f"{kind!r} is not a closed-form start; use ridge or gaussian.")


def _gaussian(stats: Statistics, fitted: np.ndarray, shrinkage: float, scale: float) -> ClosedForm:
    d = stats.gram.shape[0] - 1
    counts = stats.counts[fitted]
    sums = stats.sums[fitted, :d]
    within = stats.gram[:d, :d] - (sums.T / counts) @ sums  # sum of (x - mu_label)(x - mu_label)^T
    dof = max(float(counts.sum()) - len(counts), 1.0)
    covariance = (1 - shrinkage) * within / dof + shrinkage * scale * np.eye(d)
    means = sums / counts[:, None]
    weight = np.zeros((len(fitted), d))
    bias = np.zeros(len(fitted))
    weight[fitted] = np.linalg.solve(covariance, means.T).T
    bias[fitted] = -0.5 * np.sum(weight[fitted] * means, axis=1) + np.log(counts / counts.sum())
    return ClosedForm(weight, bias, fitted)


def linear_head_size(head: dict[str, np.ndarray]) -> tuple[int, int]:
    """The (outputs, features) of a head that is one linear layer over the features.

    Raises:
        ConfigError: the head is anything else (an MLP head has no closed form).
    """
    if set(head) != set(LINEAR):
        raise ConfigError(
            f"A closed-form start needs a linear head ({', '.join(LINEAR)}); this bundle's head has {sorted(head)}. "
            'Use start="shipped" for MLP heads.'
        )
    rows, features = head[LINEAR[0]].shape
    return int(rows), int(features)


def into_head(form: ClosedForm, shipped: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The bundle's head with the closed form's rows for the labels it fitted; other rows (spare slots too) as shipped.

    Raises:
        ConfigError: the head is not one linear layer, or not of the statistics' size.
    """
    rows, features = linear_head_size(shipped)
    labels = len(form.fitted)
    if features != form.weight.shape[1] or rows < labels:
        raise ConfigError(
            f"The statistics are for {labels} labels x {form.weight.shape[1]} features; the head is {rows} x {features}."
        )
    weight, bias = shipped[LINEAR[0]].copy(), shipped[LINEAR[1]].copy()
    fitted = np.flatnonzero(form.fitted)
    weight[fitted] = form.weight[fitted]
    bias[fitted] = form.bias[fitted]
    return {LINEAR[0]: weight.astype(np.float32), LINEAR[1]: bias.astype(np.float32)}


def epsilon(noise_multiplier: float, delta: float, releases: int = 1) -> float:
    """The (epsilon, ``delta``) guarantee of ``releases`` Gaussian releases at ``noise_multiplier``, per example.

    Renyi DP of the Gaussian mechanism (alpha / (2 z^2) per release) converted to (epsilon, delta) at the best
    order (Mironov 2017); inf where there is no noise.
    """
    if noise_multiplier <= 0:
        return math.inf
    orders = np.concatenate([np.linspace(1.01, 10, 200), np.linspace(10.5, 1024, 500)])
    return float(np.min(releases * orders / (2 * noise_multiplier**2) + math.log(1 / delta) / (orders - 1)))


def accounting(noise: StatisticsNoise | None, delta: float) -> dict[str, Any]:
    """What a run's provenance records about the statistics' privacy."""
    if noise is None:
        return {"noise": None, "epsilon": None}
    return {
        "noise": "local Gaussian, added by each device to its statistics before they leave it",
        "noise_multiplier": noise.noise_multiplier,
        "feature_norm": noise.feature_norm,
        "sigma": noise.sigma,
        "delta": delta,
        "epsilon": epsilon(noise.noise_multiplier, delta),
    }
