"""The fleet's settings: checked on creation, and recorded in a form that builds the same settings again."""

from __future__ import annotations

import json

import pytest

from edgeft.config import Schedule
from edgeft.errors import ConfigError
from fleet.config import FleetConfig


def test_an_unknown_local_schedule_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"local_schedule must be one of constant, linear, cosine; got 'steps'"):
        FleetConfig(local_schedule="steps")


def test_the_recorded_settings_build_the_same_config_again() -> None:
    config = FleetConfig(rounds=3, local_schedule="linear", local_lr=0.02)
    raw = json.loads(json.dumps(config.provenance()))  # as a deployment's run config carries it
    assert raw["local_schedule"] == "linear"
    again = FleetConfig(**raw)
    assert again == config and again.local_schedule is Schedule.LINEAR


def test_local_training_is_gentler_after_a_closed_form_start_unless_set() -> None:
    assert FleetConfig(start="gaussian").local_epochs == 5  # the start is the central head already
    assert FleetConfig(start="shipped").local_epochs == 20
    assert FleetConfig(start="ridge", local_epochs=12).local_epochs == 12


def test_an_unknown_start_and_a_gaussian_shrinkage_above_one_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"start must be one of shipped, ridge, gaussian; got 'lda'"):
        FleetConfig(start="lda")
    with pytest.raises(ConfigError, match=r"shrinkage must be > 0 \(and at most 1 for the gaussian start\), got 1.5"):
        FleetConfig(shrinkage=1.5)
