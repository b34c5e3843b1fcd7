"""Simulated fleets from one labelled data set: non-IID devices by a Dirichlet draw over the labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeft.errors import ConfigError
from fleet.client import DeviceData


def dirichlet_devices(
    X: Sequence[Any],
    y: Sequence[str],
    devices: int,
    alpha: float,
    *,
    sizes: tuple[int, int] = (8, 40),
    test_fraction: float = 0.3,
    seed: int = 0,
) -> list[DeviceData]:
    """Split ``X, y`` into ``devices`` disjoint devices whose label mixes follow Dirichlet(``alpha``).

    Small ``alpha`` (0.3) gives each device a few dominant labels; large (10), nearly the overall mix.
    Each device holds out ``test_fraction`` of its examples (at least one) as its own held-out split.

    Args:
        X, y: examples (texts or images) and labels.
        devices: how many devices.
        alpha: the Dirichlet concentration.
        sizes: each device's example count is drawn uniformly from this range (inclusive).
        test_fraction: share of each device's examples held out.
        seed: the draw's seed.

    Raises:
        ConfigError: not enough examples for the devices asked, or a value out of range.
    """
    if alpha <= 0 or devices < 1 or not 0 < test_fraction < 1 or not 2 <= sizes[0] <= sizes[1]:
        raise ConfigError("alpha must be > 0, devices >= 1, test_fraction in (0, 1) and 2 <= sizes[0] <= sizes[1]")
    rng = np.random.default_rng(seed)
    labels = sorted(set(y))
    pools = {label: list(rng.permutation([i for i, v in enumerate(y) if v == label])) for label in labels}
    counts = rng.integers(sizes[0], sizes[1] + 1, size=devices)
    if counts.sum() > len(y):
        raise ConfigError(
            f"{devices} devices of {sizes[0]}-{sizes[1]} examples need about {counts.sum()}, but there are {len(y)}."
        )
    fleet = []
    for n in counts:
        mix = rng.dirichlet(np.full(len(labels), alpha))
        chosen = []
        for _ in range(n):
            left = np.array([mix[k] if pools[label] else 0.0 for k, label in enumerate(labels)])
            label = labels[rng.choice(len(labels), p=left / left.sum())] if left.sum() else None
            if label is None:  # the device's labels ran dry: take any label still left
                label = next(lbl for lbl in labels if pools[lbl])
            chosen.append(pools[label].pop())
        held = max(1, round(test_fraction * n))
        train, test = chosen[held:], chosen[:held]
        fleet.append(DeviceData([X[i] for i in train], [y[i] for i in train], [X[i] for i in test], [y[i] for i in test]))
    return fleet
