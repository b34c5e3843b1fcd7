"""Settings are declared once (edgeft.fields): one validator checks them, and the CLI's flags and the service's
request fields are made from the same declarations."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from edgeft.cli import _parser
from edgeft.cli.flags import add_flags, given
from edgeft.config import (
    DriftConfig,
    ExportConfig,
    FineTuneConfig,
    ImagePreprocessing,
    RuntimeConfig,
    TensorPreprocessing,
    TrainConfig,
)
from edgeft.errors import ConfigError
from edgeft.fields import EXPORT, PERSONALIZE, SERVICE, Validated, declarations, setting
from fleet.config import FleetConfig, PrivacyConfig

CONFIGS = (
    TrainConfig,
    RuntimeConfig,
    DriftConfig,
    ExportConfig,
    FineTuneConfig,
    ImagePreprocessing,
    TensorPreprocessing,
    FleetConfig,
    PrivacyConfig,
)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ExportConfig(weight_decay="x"), r"ExportConfig.weight_decay must be a finite number >= 0, got 'x'"),
        (
            lambda: FineTuneConfig(trainable_blocks=1.5),
            r"FineTuneConfig.trainable_blocks must be an integer >= 0 or None \(all\), got 1.5",
        ),
        (
            lambda: ExportConfig(device_trainable_blocks=True),
            r"ExportConfig.device_trainable_blocks must be an integer >= 0, got True",
        ),
        (lambda: TrainConfig(lr=float("inf")), r"TrainConfig.lr must be a finite number > 0, got inf \(default: 0.01\)"),
        (lambda: DriftConfig(level=1), r"DriftConfig.level must be in \(0, 1\), got 1"),
    ],
)
def test_a_value_outside_its_declaration_is_a_config_error_naming_class_field_value_and_range(build, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_of_every_config_is_declared_with_help_and_its_default_is_valid(cls) -> None:
    assert issubclass(cls, Validated)
    assert all(d.setting.help for d in declarations(cls))
    assert cls() == cls(**{d.name: d.default for d in declarations(cls)})


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_a_value_of_the_wrong_kind_in_any_field_is_a_config_error_never_a_raw_one(cls) -> None:
    for d in declarations(cls):
        for value in ("x", True, 1.5, -1, float("nan"), [], object()):
            try:
                cls(**{d.name: value})
            except ConfigError:
                pass


def test_every_setting_the_personalize_command_offers_is_a_flag_with_its_declared_choices() -> None:
    personalize = _parser()._subparsers._group_actions[0].choices["personalize"]
    flags = {a.dest: a for a in personalize._actions}
    for d in declarations(TrainConfig):
        if PERSONALIZE in d.setting.expose:
            assert flags[d.name].default is None, d.name  # unset: the bundle's value
            assert d.setting.help in flags[d.name].help
    assert flags["metric"].choices == ["loss", "accuracy", "macro_f1"]
    assert "augment_views" not in flags  # not offered: declared without PERSONALIZE


def test_the_service_request_has_the_declared_ranges_capped_at_each_limit() -> None:
    from device_runtime.service.schemas import PersonalizeRequest

    properties = PersonalizeRequest.model_json_schema()["properties"]
    offered = {d.name for d in declarations(TrainConfig) if SERVICE in d.setting.expose}
    assert offered == set(properties) - {"mode", "new_labels"}
    epochs = properties["epochs"]["anyOf"][0]
    assert (epochs["minimum"], epochs["maximum"]) == (1, 1000)  # ge=1 declared, limit=1000 for an untrusted caller
    assert properties["forgetting_level"]["anyOf"][0] == {"exclusiveMinimum": 0, "maximum": 1, "type": "number"}


@dataclasses.dataclass(frozen=True)
class _Demo(Validated):
    momentum: float = setting(0.9, "AdamW's beta1", gt=0, lt=1, expose=(PERSONALIZE, SERVICE))


def test_a_new_setting_is_one_line_a_validated_field_a_flag_and_a_request_field() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, _Demo, PERSONALIZE)
    assert given(parser.parse_args(["--momentum", "0.5"]), _Demo, PERSONALIZE) == {"momentum": 0.5}
    with pytest.raises(ConfigError, match=r"_Demo.momentum must be in \(0, 1\), got 1.5"):
        _Demo(momentum=1.5)
    from device_runtime.service.schemas import _settings

    annotation, field = _settings(_Demo, SERVICE)["momentum"]
    assert annotation == float | None and field.description.startswith("AdamW's beta1")


def test_both_http_apps_answer_errors_in_one_shape() -> None:
    from device_runtime.service.schemas import ErrorBody as ServiceErrorBody
    from edgeft.registry.schemas import ErrorBody as RegistryErrorBody

    assert ServiceErrorBody is RegistryErrorBody


def test_unset_training_flags_of_export_leave_the_bundle_kinds_defaults_in_place() -> None:
    export = _parser()._subparsers._group_actions[0].choices["export"]
    args = export.parse_args(["--model", "m", "--output", "b"])
    assert given(args, TrainConfig, EXPORT) == {}  # so a fused bundle keeps FUSED_LR rather than TrainConfig's lr
    assert given(export.parse_args(["--model", "m", "--output", "b", "--lr", "0.5"]), TrainConfig, EXPORT) == {"lr": 0.5}
