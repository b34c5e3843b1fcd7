"""Differential privacy: each device's update is clipped before it leaves, and the settings are recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from device_runtime import Personalizer
from edgeft.layout import FLEET
from fleet import FleetConfig, PrivacyConfig, Publish, simulate


def test_clipped_updates_move_the_head_no_further_than_the_clipping_norm(
    minilm_bundle: Path, bbc_devices, fleet_runtime, tmp_path: Path
) -> None:
    clip = 1e-3  # far below a round's update (about 7): every device's update is cut to this length
    config = FleetConfig(
        start="shipped",  # the update is measured from the shipped head
        rounds=1,
        min_available_clients=4,
        min_train_clients=4,
        fraction_evaluate=0.0,
        privacy=PrivacyConfig(clipping_norm=clip, noise_multiplier=0.0),
    )
    result = simulate(minilm_bundle, bbc_devices, config, publish=Publish(str(tmp_path / "dp")), runtime=fleet_runtime)
    shipped = Personalizer.from_bundle(minilm_bundle).head_parameters()
    moved = np.sqrt(sum(float(np.sum((result.head[k] - shipped[k]) ** 2)) for k in shipped))
    assert 0 < moved <= clip * 1.001
    provenance = json.loads((result.bundles[-1] / FLEET).read_text())
    assert provenance["privacy"] == {"clipping_norm": clip, "noise_multiplier": 0.0, "feature_norm": 1.0, "delta": 1e-5}


def test_with_privacy_on_the_device_adds_the_noise_to_its_statistics_before_they_leave(minilm_bundle: Path, bbc_devices) -> None:
    from flwr.app import ConfigRecord

    from fleet.client import local_statistics

    device = Personalizer.from_bundle(minilm_bundle)
    exact = local_statistics(device, bbc_devices[0], ConfigRecord())
    noisy = local_statistics(device, bbc_devices[0], ConfigRecord({"noise-multiplier": 1.0, "feature-norm": 1.0}))
    assert exact.counts.sum() == 10  # ten training articles: unit-norm MiniLM features, so clipping changes nothing
    added = (noisy.sums - exact.sums).ravel()
    assert np.std(added) == pytest.approx(np.sqrt(6.0), rel=0.15)  # sigma = 1.0 x sqrt((1 + 1)^2 + (1 + 1))
