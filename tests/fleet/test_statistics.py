"""The closed-form start: the devices' summed statistics give the head a central fit gives, whatever the skew."""

from __future__ import annotations

import numpy as np
import pytest

from edgeft.errors import ConfigError, DataError
from fleet.statistics import (
    RIDGE_SCALE,
    ClosedForm,
    Start,
    Statistics,
    StatisticsNoise,
    accounting,
    closed_form,
    device_statistics,
    epsilon,
    into_head,
)

LABELS, FEATURES = 4, 12


def _skewed_fleet(devices: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Gaussian classes split over devices whose label mixes follow Dirichlet(0.1): most devices hold one label."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (LABELS, FEATURES))
    fleet = []
    for _ in range(devices):
        n = int(rng.integers(3, 12))
        targets = rng.choice(LABELS, size=n, p=rng.dirichlet(np.full(LABELS, 0.1)))
        fleet.append((centres[targets] + rng.normal(0, 0.8, (n, FEATURES)), targets))
    x = np.concatenate([f for f, _ in fleet])
    y = np.concatenate([t for _, t in fleet])
    return x, y, fleet


def _summed(fleet: list[tuple[np.ndarray, np.ndarray]], noise: StatisticsNoise | None = None) -> Statistics:
    total = device_statistics(*fleet[0], LABELS, noise)
    for features, targets in fleet[1:]:
        total = total + device_statistics(features, targets, LABELS, noise)
    return total


def _central_ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Ridge on the pooled rows by least squares on the penalty-augmented system (bias unpenalized): (d + 1, labels)."""
    z = np.hstack([x, np.ones((len(x), 1))])
    onehot = np.eye(LABELS)[y]
    root = np.sqrt(penalty) * np.eye(FEATURES + 1)[:FEATURES]
    solution, *_ = np.linalg.lstsq(np.vstack([z, root]), np.vstack([onehot, np.zeros((FEATURES, LABELS))]), rcond=None)
    return solution


def test_the_one_round_start_equals_the_central_ridge_head_on_a_skewed_split() -> None:
    x, y, fleet = _skewed_fleet()
    shrinkage = 0.1
    form = closed_form(_summed(fleet), Start.RIDGE, shrinkage)
    centred = x - x.mean(axis=0)
    penalty = shrinkage * np.trace(centred.T @ centred) / len(x) / FEATURES * len(x)  # as closed_form scales it
    central = _central_ridge(x, y, penalty)
    np.testing.assert_allclose(form.weight, RIDGE_SCALE * central[:FEATURES].T, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(form.bias, RIDGE_SCALE * central[FEATURES], rtol=1e-9, atol=1e-10)


def test_the_gaussian_start_equals_the_one_fitted_on_the_pooled_rows() -> None:
    x, y, fleet = _skewed_fleet()
    federated = closed_form(_summed(fleet), Start.GAUSSIAN, 0.3)
    pooled = closed_form(device_statistics(x, y, LABELS), Start.GAUSSIAN, 0.3)
    np.testing.assert_allclose(federated.weight, pooled.weight, rtol=1e-9)
    np.testing.assert_allclose(federated.bias, pooled.bias, rtol=1e-9)
    assert np.mean((x @ federated.weight.T + federated.bias).argmax(axis=1) == y) > 0.9


def test_a_label_no_device_holds_and_the_spare_slots_keep_their_shipped_rows() -> None:
    x, y, _ = _skewed_fleet()
    seen = y != 2
    form = closed_form(device_statistics(x[seen], y[seen], LABELS), Start.GAUSSIAN, 0.3)
    shipped = {
        "head.weight": np.full((LABELS + 2, FEATURES), 7.0, np.float32),
        "head.bias": np.full(LABELS + 2, -1e4, np.float32),
    }
    head = into_head(form, shipped)
    assert list(form.fitted) == [True, True, False, True]
    for row in (2, 4, 5):
        np.testing.assert_array_equal(head["head.weight"][row], shipped["head.weight"][row])
        assert head["head.bias"][row] == shipped["head.bias"][row]
    np.testing.assert_allclose(head["head.weight"][0], form.weight[0], rtol=1e-6)


def test_an_mlp_head_is_refused_with_the_fallback_named() -> None:
    form = ClosedForm(np.zeros((LABELS, FEATURES)), np.zeros(LABELS), np.ones(LABELS, bool))
    mlp = {
        name: np.zeros((2, 2), np.float32)
        for name in ("head.hidden.weight", "head.hidden.bias", "head.out.weight", "head.out.bias")
    }
    with pytest.raises(ConfigError, match='needs a linear head.*Use start="shipped" for MLP heads'):
        into_head(form, mlp)


def test_statistics_of_another_shape_or_with_nan_are_refused() -> None:
    good = device_statistics(np.ones((3, FEATURES)), np.array([0, 1, 1]), LABELS).arrays()
    with pytest.raises(DataError, match=r"'sums' must have shape \(4, 13\)"):
        Statistics.from_arrays({**good, "sums": good["sums"][:-1]}, FEATURES, LABELS)
    with pytest.raises(DataError, match="NaN or infinite"):
        Statistics.from_arrays({**good, "gram": good["gram"] * np.nan}, FEATURES, LABELS)


def test_with_privacy_each_device_clips_its_rows_and_adds_noise_of_the_stated_scale() -> None:
    rng = np.random.default_rng(1)
    features, targets = rng.normal(0, 3, (200, FEATURES)), rng.integers(0, LABELS, 200)
    noise = StatisticsNoise(noise_multiplier=0.5, feature_norm=1.0)
    clipped = features / np.linalg.norm(features, axis=1, keepdims=True)
    exact = device_statistics(clipped, targets, LABELS)
    noisy = device_statistics(features, targets, LABELS, noise, seed=3)
    added = np.concatenate([(noisy.gram - exact.gram)[np.triu_indices(FEATURES + 1)], (noisy.sums - exact.sums).ravel()])
    assert noise.sigma == pytest.approx(0.5 * np.sqrt(2.0**2 + 2.0))
    assert np.std(added) == pytest.approx(noise.sigma, rel=0.1)  # 143 entries: the scale, not a fluke
    np.testing.assert_array_equal(noisy.gram, noisy.gram.T)
    assert not np.allclose(device_statistics(features, targets, LABELS, noise).gram, noisy.gram)  # fresh entropy by default


def test_the_accounting_records_the_noise_and_an_epsilon_that_falls_as_noise_grows() -> None:
    record = accounting(StatisticsNoise(1.0, 1.0), delta=1e-5)
    assert record["noise"].startswith("local Gaussian, added by each device")
    assert record["epsilon"] == pytest.approx(epsilon(1.0, 1e-5))
    assert epsilon(4.0, 1e-5) < epsilon(1.0, 1e-5) < epsilon(0.5, 1e-5)
    assert 4.0 < epsilon(1.0, 1e-5) < 5.5  # the Gaussian mechanism at z = 1, delta 1e-5: about 5.3 by Renyi DP
    assert accounting(None, 1e-5) == {"noise": None, "epsilon": None}
