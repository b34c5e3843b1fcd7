"""Per device, the better of the fleet's head and its own, judged on the device's own held-out rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft.errors import ConfigError
from fleet.personal import ChoiceConfig, Kept, choose_head


@pytest.fixture
def device(minilm_bundle: Path, fleet_runtime) -> Personalizer:
    return Personalizer.from_bundle(minilm_bundle, runtime=fleet_runtime)


def test_a_device_keeps_the_head_it_had_when_the_fleets_head_fails_on_its_rows(device: Personalizer, bbc_devices) -> None:
    data = bbc_devices[0]
    shipped = device.head_parameters()
    broken = {k: v.copy() for k, v in shipped.items()}
    broken["head.bias"][device.labels.index("sports")] += 1e3  # answers "sports" to everything
    choice = choose_head(device, data.X, data.y, broken, previous=shipped)
    assert choice.kept is Kept.PREVIOUS
    assert choice.scores["previous"]["accuracy"] > choice.scores["global"]["accuracy"]
    assert choice.reason.startswith("previous had the best held-out loss over 4 parts of 10 examples")
    np.testing.assert_array_equal(device.head_parameters()["head.bias"], shipped["head.bias"])  # the kept head is current


def test_where_no_candidate_does_better_on_held_out_rows_the_global_head_is_kept(device: Personalizer, bbc_devices) -> None:
    data = bbc_devices[1]
    head = device.head_parameters()
    still = ChoiceConfig(epochs=1, lr=1e-12)  # the personal head (and so every mix) stays the global one
    choice = choose_head(device, data.X, data.y, head, previous=head, config=still)
    assert choice.kept is Kept.GLOBAL and choice.weight == 0.0
    assert set(choice.scores) == {"global", "mix 0.5", "personal", "previous"}


def test_a_choice_needs_two_parts_and_mix_weights_between_zero_and_one() -> None:
    with pytest.raises(ConfigError, match="folds must be >= 2"):
        ChoiceConfig(folds=1)
    with pytest.raises(ConfigError, match=r"every mix weight must be in \(0, 1\), got \(1.0,\)"):
        ChoiceConfig(mixes=(1.0,))
