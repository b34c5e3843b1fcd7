"""Flower strategies over the head's arrays, which refuse a device's head that cannot be one."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp import strategy as flower

from device_runtime.validation import check_head
from edgeft.errors import DataError
from fleet.config import Aggregation, FleetConfig
from fleet.heads import from_record, to_record

log = logging.getLogger("edgeft.fleet")


class _RefusesBadHeads:
    """Drops, before aggregation, every reply whose head has other names or shapes, NaN or inf, or no example count.

    Such a device is left out of the round, as one that did not answer; the round goes on with the rest.
    The aggregated head goes out as float32, whatever the strategy computed it in.
    """

    reference: dict[str, np.ndarray]
    refused: list[dict[str, Any]]
    counts: dict[int, dict[str, int]]  # per round: devices whose heads were averaged, and their examples

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        kept = []
        for msg in replies:
            problem = None if msg.has_error() else _problem(msg, self.reference)
            if problem is None:
                kept.append(msg)
                continue
            node = msg.metadata.src_node_id
            log.warning("round %d: refused the head of node %d: %s", server_round, node, problem)
            self.refused.append({"round": server_round, "node": node, "reason": problem})
        heads = [msg for msg in kept if not msg.has_error()]
        examples = sum(int(msg.content["metrics"]["num-examples"]) for msg in heads)
        self.counts[server_round] = {"clients": len(heads), "examples": examples}
        arrays, metrics = super().aggregate_train(server_round, kept)  # type: ignore[misc]
        # FedAdam's update is float64 numpy; the head is float32 on every device, and sent as float64 it
        # doubled the bytes each device receives (102,480 instead of 51,240 for a Fashion-MNIST head).
        return (None if arrays is None else to_record(from_record(arrays))), metrics


def _problem(msg: Message, reference: dict[str, np.ndarray]) -> str | None:
    content = msg.content
    if "arrays" not in content.array_records or "metrics" not in content.metric_records:
        return "the reply holds no head arrays or no metrics"
    count = content["metrics"].get("num-examples")
    if not isinstance(count, (int, float)) or not np.isfinite(count) or count <= 0:
        return f"num-examples is {count!r}, not a positive count"
    try:
        check_head(from_record(content["arrays"]), reference, "its head")
    except DataError as e:
        return str(e)
    return None


class GuardedFedAvg(_RefusesBadHeads, flower.FedAvg):
    """FedAvg that refuses misshaped or non-finite heads."""


class GuardedFedAdam(_RefusesBadHeads, flower.FedAdam):
    """FedAdam that refuses misshaped or non-finite heads."""


_STRATEGIES = {Aggregation.FEDAVG: GuardedFedAvg, Aggregation.FEDADAM: GuardedFedAdam}


def build_strategy(config: FleetConfig, reference: dict[str, np.ndarray], fleet_size: int | None = None) -> flower.Strategy:
    """The Flower strategy ``config`` asks for, refusing bad heads, wrapped for differential privacy if asked.

    Args:
        config: the run's settings.
        reference: the bundle's head (names and shapes every device's head must have).
        fleet_size: devices expected per round, for the privacy wrapper's noise scale
            (default: ``min_train_clients``).

    Returns:
        The strategy; its ``refused`` list (on the inner strategy) records each refused head.
    """
    options: dict[str, Any] = {
        "fraction_train": config.fraction_train,
        "fraction_evaluate": config.fraction_evaluate,
        "min_train_nodes": config.min_train_clients,
        "min_evaluate_nodes": config.min_evaluate_clients,
        "min_available_nodes": config.min_available_clients,
    }
    if config.aggregation is Aggregation.FEDADAM:
        options["eta"] = config.server_lr
    strategy = _STRATEGIES[config.aggregation](**options)
    strategy.reference, strategy.refused, strategy.counts = reference, [], {}
    if config.privacy is None:
        return strategy
    sampled = max(config.min_train_clients, round((fleet_size or 0) * config.fraction_train))
    return flower.DifferentialPrivacyClientSideFixedClipping(
        strategy, config.privacy.noise_multiplier, config.privacy.clipping_norm, sampled
    )


def inner(strategy: flower.Strategy) -> _RefusesBadHeads:
    """The refusing strategy inside a privacy wrapper (or the strategy itself)."""
    return getattr(strategy, "strategy", strategy)
