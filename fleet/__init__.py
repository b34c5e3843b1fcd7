"""Federated learning of heads across a fleet of devices, with Flower (the ``fleet`` extra).

Before the rounds, each device sends the sums of its features (Gram matrix, per-label sums and
counts), from which the server solves the head a central fit would give, whatever the label skew
(``FleetConfig.start``). Then only the head crosses: each device personalizes the global head on its
own examples through :class:`~device_runtime.Personalizer` (its acceptance guard included) and sends
back the head's arrays, its example count and metrics; the server aggregates them with a Flower
strategy and writes the result as a new bundle version. Afterwards each device keeps the global head,
its personal one, a mix or its previous one, whichever its own held-out rows favour (``choose_head``).

Names are imported on first use, so that ``fleet.config`` (which the CLI reads for its defaults)
loads without Flower.
"""

import importlib
from typing import Any

_WHERE = {
    "Aggregation": "fleet.config",
    "Start": "fleet.statistics",
    "ChoiceConfig": "fleet.personal",
    "choose_head": "fleet.personal",
    "Tls": "fleet.deployment",
    "FleetConfig": "fleet.config",
    "PrivacyConfig": "fleet.config",
    "DeviceData": "fleet.client",
    "client_app": "fleet.client",
    "FleetResult": "fleet.server",
    "Publish": "fleet.server",
    "run_fleet": "fleet.server",
    "server_app": "fleet.server",
    "simulate": "fleet.simulation",
    "dirichlet_devices": "fleet.partition",
    "Endpoint": "fleet.deployment",
    "serve": "fleet.deployment",
    "join": "fleet.deployment",
    "stop": "fleet.deployment",
}

__all__ = [
    "Aggregation",
    "ChoiceConfig",
    "DeviceData",
    "Endpoint",
    "FleetConfig",
    "FleetResult",
    "PrivacyConfig",
    "Publish",
    "Start",
    "Tls",
    "choose_head",
    "client_app",
    "dirichlet_devices",
    "join",
    "run_fleet",
    "serve",
    "server_app",
    "simulate",
    "stop",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'fleet' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
