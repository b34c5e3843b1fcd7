"""The fleet's configuration: one frozen dataclass for the rounds, one for differential privacy."""

from __future__ import annotations

import dataclasses
import enum

from edgeft.config import Schedule
from edgeft.errors import ConfigError
from edgeft.fields import FLEET, FLEET_TRAINING, Validated, setting
from fleet.statistics import Start, StatisticsNoise


class Aggregation(str, enum.Enum):
    """How the server combines the devices' heads (Flower strategies)."""

    FEDAVG = "fedavg"  # weighted mean, by each device's example count
    FEDADAM = "fedadam"  # the mean update, applied with server-side Adam (eta = server_lr)


@dataclasses.dataclass(frozen=True)
class PrivacyConfig(Validated):
    """Differential privacy for what the devices send.

    Rounds: central DP with client-side fixed clipping (Flower's wrapper and mod). Each device clips its
    head update (new head minus the head it received) to ``clipping_norm`` in L2; the server adds Gaussian
    noise of standard deviation ``noise_multiplier * clipping_norm / clients`` to the mean.

    Statistics round (closed-form start): each device clips every feature vector to ``feature_norm`` and adds
    Gaussian noise of ``noise_multiplier`` times the sensitivity to its statistics itself, before they leave it;
    the provenance records the resulting (epsilon, ``delta``) per example (``fleet.statistics.epsilon``).
    """

    # L2 bound of one device's update: about what a MiniLM head's round update measures at the default local
    # settings (BBC devices: 6.9 to 7.8; it was 1.3 at 5 linear epochs), so that clipping bounds outliers
    # rather than cutting every update to a fraction
    clipping_norm: float = setting(
        8.0, "with --dp: L2 bound of one device's head update", gt=0, flag="--dp-clip", expose=(FLEET,)
    )
    # >= 1 is Flower's advice for strong privacy; costs accuracy on small fleets
    noise_multiplier: float = setting(
        0.1, "with --dp: noise standard deviation, in units of clip / devices", ge=0, flag="--dp-noise", expose=(FLEET,)
    )
    # Sentence embeddings (MiniLM) are unit-norm already; image features need their own bound.
    feature_norm: float = setting(
        1.0, "with --dp: L2 bound of each feature vector in the devices' statistics (closed-form start)", gt=0, expose=(FLEET,)
    )
    # Below 1 / examples on a device.
    delta: float = setting(
        1e-5, "with --dp: the delta of the statistics' (epsilon, delta) guarantee", gt=0, lt=1, expose=(FLEET,)
    )

    def statistics_noise(self) -> StatisticsNoise:
        """The local noise each device adds to its statistics."""
        return StatisticsNoise(self.noise_multiplier, self.feature_norm)


@dataclasses.dataclass(frozen=True)
class FleetConfig(Validated):
    """One federated run: rounds, which devices take part, local training, aggregation, output.

    Raises:
        ConfigError: a value out of range.
    """

    # A linear head on shared features settles within a few rounds.
    rounds: int = setting(5, "federated rounds", ge=1, expose=(FLEET,))
    # From the shipped head, 8 rounds ended 3 to 11 points below a central fit under label skew.
    start: Start = setting(
        Start.GAUSSIAN,
        "where the rounds start: a closed-form head from the devices' summed feature statistics (gaussian, ridge; "
        "one query round), or the bundle's head (shipped)",
        expose=(FLEET_TRAINING,),
    )
    shrinkage: float = setting(
        0.3,
        "the closed form's regularization: covariance shrinkage in (0, 1] (gaussian), penalty > 0 (ridge)",
        gt=0,
        expose=(FLEET_TRAINING,),
    )
    fraction_train: float = setting(1.0, "share of connected devices that train each round", gt=0, le=1, expose=(FLEET,))
    min_train_clients: int = setting(
        2, "devices a round asks to train at least; a round goes on without those that drop out", ge=1, expose=(FLEET,)
    )
    min_available_clients: int = setting(
        2, "devices that must be connected before a run starts", ge=1, flag="--min-clients", expose=(FLEET,)
    )
    fraction_evaluate: float = setting(
        1.0, "share of devices that score the global head on their held-out split each round", ge=0, le=1, expose=(FLEET,)
    )
    min_evaluate_clients: int = setting(2, "devices a round asks to evaluate at least", ge=1, expose=(FLEET,))
    aggregation: Aggregation = setting(Aggregation.FEDAVG, "Flower strategy over the heads", expose=(FLEET_TRAINING,))
    server_lr: float = setting(0.1, "FedAdam's server step size (its eta)", gt=0, expose=(FLEET_TRAINING,))
    # A device's few examples are one batch: an epoch is one AdamW step. From the shipped head, 5 left it 7 points
    # below the central one after 8 rounds; a closed-form start already is the central head: at 20 the rounds drifted
    # it 1 to 3 points down under skew (Rotten Tomatoes alpha 0.1: 0.703 after 8 rounds at 20, 0.720 at 5, central
    # 0.727; docs/fleet.md).
    local_epochs: int | None = setting(
        None,
        "partial_fit epochs per round on each device",
        ge=1,
        none="5 after a closed-form start, 20 from the shipped head",
        expose=(FLEET_TRAINING,),
    )
    local_lr: float | None = setting(None, "learning rate on the devices", gt=0, none="the bundle's", expose=(FLEET_TRAINING,))
    # AdamW starts afresh every round, so the bundle's decay to zero would spend most of each round's few steps
    # at a small rate; the rounds themselves are the schedule.
    local_schedule: Schedule = setting(
        Schedule.CONSTANT, "learning-rate schedule within each round on the devices", expose=(FLEET_TRAINING,)
    )
    # A device that drops out is left behind.
    round_timeout: float = setting(600.0, "seconds a round waits for replies", gt=0, expose=(FLEET,))
    save_every: int = setting(
        0, "also write a bundle version every K rounds, to OUTPUT-roundK; 0: only the last", ge=0, expose=(FLEET,)
    )
    privacy: PrivacyConfig | None = setting(None, "differential privacy of what the devices send", none="no clipping, no noise")
    # Round r uses seed + r, so that each round's guard holds out other examples. With one seed for every round
    # the same fifth of each device's examples was held out, and never trained, every round.
    seed: int = setting(0, "local training's shuffling seed", ge=0, expose=(FLEET,))

    def _rules(self) -> None:
        if self.start is Start.GAUSSIAN and self.shrinkage > 1:
            raise ConfigError(f"shrinkage must be > 0 (and at most 1 for the gaussian start), got {self.shrinkage}")
        if self.local_epochs is None:
            object.__setattr__(self, "local_epochs", 20 if self.start is Start.SHIPPED else 5)
        if self.min_train_clients > self.min_available_clients:
            raise ConfigError(
                f"min_train_clients ({self.min_train_clients}) exceeds min_available_clients ({self.min_available_clients}): "
                "the run would wait for devices it never asks for; raise min_available_clients."
            )

    def provenance(self) -> dict:
        """The settings a written bundle records (its provenance)."""
        values = dataclasses.asdict(self)
        values["aggregation"] = self.aggregation.value
        values["local_schedule"] = self.local_schedule.value
        values["start"] = self.start.value
        return values
