"""Devices for the fleet tests: disjoint slices of the BBC user split, each with its own held-out examples."""

from __future__ import annotations

import pytest

pytest.importorskip("flwr")

from fleet.client import DeviceData


@pytest.fixture(scope="session")
def bbc_devices(bbc_splits) -> list[DeviceData]:
    """Four devices of 10 training and 5 held-out articles each, every topic on every device."""
    texts, labels = bbc_splits["user"]
    order = sorted(range(len(texts)), key=lambda i: (i % 4, labels[i], i))  # round-robin over devices, grouped by topic
    devices = []
    for d in range(4):
        mine = [i for i in order if i % 4 == d][:15]
        train, test = mine[::3] + mine[1::3], mine[2::3]
        devices.append(
            DeviceData([texts[i] for i in train], [labels[i] for i in train], [texts[i] for i in test], [labels[i] for i in test])
        )
    return devices


@pytest.fixture(scope="session")
def fleet_runtime(tmp_path_factory: pytest.TempPathFactory):
    """The devices' runtime: one persistent feature cache, so each simulated run embeds the articles only once."""
    from edgeft.config import RuntimeConfig

    return RuntimeConfig(cache_dir=str(tmp_path_factory.mktemp("fleet-features")))
