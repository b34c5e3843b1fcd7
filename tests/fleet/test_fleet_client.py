"""What a round asks of a device: its local training settings, and a guard that holds out other examples each round."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ConfigRecord

from device_runtime.acceptance import validation_split
from fleet.client import training_overrides


def _round(server_round: int, **more) -> ConfigRecord:
    return ConfigRecord({"local-epochs": 20, "local-schedule": "constant", "seed": 7, "server-round": server_round, **more})


def test_a_round_asks_for_its_epochs_schedule_and_learning_rate() -> None:
    assert training_overrides(_round(1)) == {"epochs": 20, "schedule": "constant", "seed": 8}
    assert training_overrides(_round(3, lr=0.05))["lr"] == 0.05


def test_every_example_of_a_device_trains_in_some_round_and_the_held_out_ones_change() -> None:
    targets = np.array([0] * 6 + [1] * 4 + [2] * 3 + [3])  # a skewed device of 14 examples, as Dirichlet(0.3) draws them
    held_out, trained = set(), set()
    for server_round in range(1, 6):
        train, validation = validation_split(targets, 0.2, training_overrides(_round(server_round))["seed"])
        held_out.add(tuple(validation))
        trained |= set(train.tolist())
    assert len(held_out) > 1
    assert trained == set(range(len(targets)))
