"""Federated learning of heads across a fleet of devices, with Flower (the ``fleet`` extra).

Only the head crosses: each device personalizes the global head on its own examples through
:class:`~device_runtime.Personalizer` (its acceptance guard included) and sends back the head's
arrays, its example count and metrics; the server aggregates them with a Flower strategy and
writes the result as a new bundle version.
"""

from fleet.client import DeviceData, client_app
from fleet.config import Aggregation, FleetConfig, PrivacyConfig
from fleet.server import FleetResult, Publish, run_fleet, server_app
from fleet.simulation import simulate

__all__ = [
    "Aggregation", "DeviceData", "FleetConfig", "FleetResult", "PrivacyConfig", "Publish",
    "client_app", "run_fleet", "server_app", "simulate",
]
