"""The fleet's configuration: one frozen dataclass for the rounds, one for differential privacy."""

from __future__ import annotations

import dataclasses
import enum

from edgeft.config import Schedule
from edgeft.errors import ConfigError
from fleet.statistics import Start, StatisticsNoise


class Aggregation(str, enum.Enum):
    """How the server combines the devices' heads (Flower strategies)."""

    FEDAVG = "fedavg"  # weighted mean, by each device's example count
    FEDADAM = "fedadam"  # the mean update, applied with server-side Adam (eta = server_lr)


@dataclasses.dataclass(frozen=True)
class PrivacyConfig:
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
    clipping_norm: float = 8.0
    noise_multiplier: float = 0.1  # >= 1 is Flower's advice for strong privacy; costs accuracy on small fleets
    feature_norm: float = 1.0  # sentence embeddings (MiniLM) are unit-norm already; image features need their own bound
    delta: float = 1e-5  # the delta of the statistics' (epsilon, delta) guarantee: below 1 / examples on a device

    def __post_init__(self) -> None:
        if self.clipping_norm <= 0 or self.feature_norm <= 0:
            raise ConfigError(f"clipping_norm and feature_norm must be > 0, got {self.clipping_norm} and {self.feature_norm}")
        if self.noise_multiplier < 0:
            raise ConfigError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if not 0 < self.delta < 1:
            raise ConfigError(f"delta must be in (0, 1), got {self.delta}")

    def statistics_noise(self) -> StatisticsNoise:
        """The local noise each device adds to its statistics."""
        return StatisticsNoise(self.noise_multiplier, self.feature_norm)


@dataclasses.dataclass(frozen=True)
class FleetConfig:
    """One federated run: rounds, which devices take part, local training, aggregation, output.

    Raises:
        ConfigError: a value out of range.
    """

    rounds: int = 5  # a linear head on shared features settles within a few rounds
    # Where round 1 starts: a closed-form head from the devices' summed statistics (one query round), or the
    # bundle's head. From the shipped head, 8 rounds ended 3 to 11 points below a central fit under label skew.
    start: Start = Start.GAUSSIAN
    shrinkage: float = 0.3  # the closed form's regularization: LDA's covariance shrinkage in (0, 1], ridge's penalty > 0
    fraction_train: float = 1.0  # share of connected devices asked to train each round
    min_train_clients: int = 2  # a round waits for at least this many devices
    min_available_clients: int = 2  # the run starts once this many devices are connected
    fraction_evaluate: float = 1.0  # share of devices that score the global head on their held-out split
    min_evaluate_clients: int = 2
    aggregation: Aggregation = Aggregation.FEDAVG
    server_lr: float = 0.1  # FedAdam's eta (its server-side step size)
    # partial_fit epochs per round on each device (a device's few examples are one batch: an epoch is one AdamW
    # step). None: 20 from the shipped head (5 left it 7 points below the central one after 8 rounds), 5 from a
    # closed-form start, which already is the central head: at 20 the rounds drifted it 1 to 3 points down
    # under skew (Rotten Tomatoes alpha 0.1: 0.703 after 8 rounds at 20, 0.720 at 5, central 0.727; docs/fleet.md).
    local_epochs: int | None = None
    local_lr: float | None = None  # None: the bundle's learning rate
    # The learning rate within a round. AdamW starts afresh every round, so the bundle's decay to zero would
    # spend most of each round's few steps at a small rate; the rounds themselves are the schedule.
    local_schedule: Schedule = Schedule.CONSTANT
    round_timeout: float = 600.0  # seconds a round waits for replies; a device that drops out is left behind
    save_every: int = 0  # also write a bundle version every K rounds (0: only after the last one)
    privacy: PrivacyConfig | None = None  # None: no clipping, no noise
    # Local training's seed; round r uses seed + r, so that each round's guard holds out other examples. With one
    # seed for every round the same fifth of each device's examples was held out, and never trained, every round.
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "aggregation", Aggregation(self.aggregation))
        try:
            object.__setattr__(self, "start", Start(self.start))
        except ValueError:
            raise ConfigError(f"start must be one of {[s.value for s in Start]}, got {self.start!r}") from None
        if not self.shrinkage > 0 or (self.start is Start.GAUSSIAN and self.shrinkage > 1):
            raise ConfigError(f"shrinkage must be > 0 (and at most 1 for the gaussian start), got {self.shrinkage}")
        try:
            object.__setattr__(self, "local_schedule", Schedule(self.local_schedule))
        except ValueError:
            raise ConfigError(
                f"local_schedule must be one of {[s.value for s in Schedule]}, got {self.local_schedule!r}"
            ) from None
        if self.local_epochs is None:
            object.__setattr__(self, "local_epochs", 20 if self.start is Start.SHIPPED else 5)
        for name in ("rounds", "local_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("fraction_train", "fraction_evaluate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.fraction_train == 0:
            raise ConfigError("fraction_train must be > 0: a round with no training device learns nothing")
        for name in ("min_train_clients", "min_available_clients", "min_evaluate_clients"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.min_train_clients > self.min_available_clients:
            raise ConfigError(
                f"min_train_clients ({self.min_train_clients}) exceeds min_available_clients ({self.min_available_clients}): "
                "the run would wait for devices it never asks for; raise min_available_clients."
            )
        if self.save_every < 0 or self.round_timeout <= 0 or self.server_lr <= 0:
            raise ConfigError("save_every must be >= 0, round_timeout and server_lr > 0")

    def provenance(self) -> dict:
        """The settings a written bundle records (its provenance)."""
        values = dataclasses.asdict(self)
        values["aggregation"] = self.aggregation.value
        values["local_schedule"] = self.local_schedule.value
        values["start"] = self.start.value
        return values
