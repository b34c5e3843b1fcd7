"""The statistics round: one Flower query to every device, whose summed replies give the closed-form start.

Runs before the first training round when ``FleetConfig.start`` is ``ridge`` or ``gaussian``. Devices
answer with :class:`~fleet.statistics.Statistics` (noisy where privacy is on) and their row count; the
server checks each reply's shapes, adds them up and solves (:mod:`fleet.statistics`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from edgeft.errors import ConfigError, DataError
from fleet.config import FleetConfig
from fleet.statistics import Statistics, accounting, closed_form, into_head, linear_head_size

log = logging.getLogger("edgeft.fleet")

STATISTICS = "statistics"  # the record names of the query and its reply
POLL_SECONDS = 0.5


def closed_form_start(
    grid: Grid, config: FleetConfig, shipped: dict[str, np.ndarray], labels: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Ask every connected device for its statistics, add them up, and solve for the starting head.

    Args:
        grid: Flower's grid.
        config: the run's settings (``start``, ``shrinkage``, ``privacy``, ``min_available_clients``, ``round_timeout``).
        shipped: the bundle's head (rows the statistics cannot fit stay as shipped).
        labels: the bundle's labels (the statistics' rows).

    Returns:
        The starting head and what the provenance records about it (devices, rows, labels fitted, privacy).

    Raises:
        ConfigError: fewer than ``min_available_clients`` devices within ``round_timeout``, no usable reply,
            or a head the closed form does not apply to (checked before any device is asked).
    """
    _, features = linear_head_size(shipped)  # an MLP head is refused before any device is asked
    nodes = _wait_for_nodes(grid, config.min_available_clients, config.round_timeout)
    query = ConfigRecord()
    noise = config.privacy.statistics_noise() if config.privacy else None
    if noise is not None:
        query["noise-multiplier"], query["feature-norm"] = noise.noise_multiplier, noise.feature_norm
    messages = [Message(RecordDict({STATISTICS: query}), dst_node_id=node, message_type=MessageType.QUERY) for node in nodes]
    total, devices, refused = None, 0, []
    for reply in grid.send_and_receive(messages, timeout=config.round_timeout):
        try:
            stats = _statistics_of(reply, features, labels)
        except DataError as e:
            log.warning("statistics round: refused the reply of node %d: %s", reply.metadata.src_node_id, e)
            refused.append({"round": 0, "node": reply.metadata.src_node_id, "reason": str(e)})
            continue
        total = stats if total is None else total + stats
        devices += 1
    if total is None:
        raise ConfigError("No device answered the statistics round with usable statistics; see Flower's log.")
    form = closed_form(total, config.start, config.shrinkage)
    summary = {
        "kind": config.start.value,
        "shrinkage": config.shrinkage,
        "devices": devices,
        "rows": float(total.counts.sum()),
        "labels_fitted": int(form.fitted.sum()),
        "labels_kept_as_shipped": int((~form.fitted).sum()),
        "refused": refused,
        "privacy": accounting(noise, config.privacy.delta if config.privacy else 0.0),
    }
    return into_head(form, shipped), summary


def to_statistics_record(stats: Statistics) -> ArrayRecord:
    """A device's statistics as a Flower ArrayRecord, in float64 (sums of many rows lose digits in float32)."""
    return ArrayRecord({name: Array(np.ascontiguousarray(v, np.float64)) for name, v in stats.arrays().items()})


def _statistics_of(reply: Message, features: int, labels: int) -> Statistics:
    if reply.has_error():
        raise DataError(f"the device failed: {reply.error.reason}")
    if STATISTICS not in reply.content.array_records:
        raise DataError("the reply holds no statistics")
    arrays = {name: array.numpy() for name, array in reply.content[STATISTICS].items()}
    return Statistics.from_arrays(arrays, features, labels)


def _wait_for_nodes(grid: Grid, minimum: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < minimum:
        if time.monotonic() > deadline:
            raise ConfigError(f"{len(nodes)} devices connected within {timeout:.0f} s; the statistics round waits for {minimum}.")
        time.sleep(POLL_SECONDS)
    return nodes
