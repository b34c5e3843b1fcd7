"""Configuration: resolved values are validated, and unknown keys are errors."""

from __future__ import annotations

import pytest

from edgeft.config import ExportConfig, Quantization, Schedule, TrainConfig, from_dict, to_dict
from edgeft.errors import ConfigError


def test_train_config_round_trips_through_a_dict() -> None:
    config = TrainConfig(epochs=3, lr=0.5, schedule="cosine")
    assert from_dict(TrainConfig, to_dict(config)) == config
    assert config.schedule is Schedule.COSINE


def test_unknown_key_is_an_error_that_lists_known_keys() -> None:
    with pytest.raises(ConfigError, match=r"Unknown config key\(s\) for TrainConfig: learning_rate.*Known keys: "):
        from_dict(TrainConfig, {"learning_rate": 0.1})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"schedule": "step"}, "schedule must be one of constant, linear, cosine; got 'step'"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"seed": "a"}, "seed must be an integer >= 0, got 'a'"),
    ],
)
def test_invalid_train_values_are_config_errors(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig().replace(**changes)


def test_replace_ignores_none_so_unset_cli_flags_keep_defaults() -> None:
    assert TrainConfig().replace(epochs=None, lr=0.1) == TrainConfig(lr=0.1)


def test_export_config_parses_enums_and_refuses_bad_names() -> None:
    assert ExportConfig(quantization="none").quantization is Quantization.NONE
    with pytest.raises(ConfigError, match="name must be a plain"):
        ExportConfig(name="../escape")
