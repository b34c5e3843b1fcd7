"""Flower's simulation engine: a fleet of simulated devices in this machine's processes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from device_runtime.trainer import ProgressCallback
from edgeft.config import RuntimeConfig
from edgeft.errors import ConfigError
from fleet.client import DeviceData, client_app
from fleet.config import FleetConfig
from fleet.server import FleetResult, Publish, server_app


def simulate(
    bundle: str | os.PathLike,
    devices: Sequence[DeviceData],
    config: FleetConfig | None = None,
    *,
    publish: Publish | None = None,
    eval_data: tuple[Sequence[Any], Sequence[str]] | None = None,
    runtime: RuntimeConfig | None = None,
    processes: int = 1,
    progress: ProgressCallback | None = None,
    mods: Sequence[Any] = (),
) -> FleetResult:
    """Federated training of ``bundle``'s head over simulated ``devices`` (``edgeft fleet simulate``).

    Args:
        bundle: the bundle every device starts from.
        devices: each simulated device's examples and held-out split.
        config: rounds, sampling, aggregation, privacy (default: :class:`FleetConfig`'s).
        publish: where to write (and push) the global head as a bundle version.
        eval_data: a server-side held-out set scored after every round.
        runtime: how the devices run (engine, threads, a persistent feature ``cache_dir``); default RuntimeConfig().
        processes: worker processes that run the devices (each loads the backbone once).
        progress: called after every round.
        mods: Flower mods for every simulated device (Flower's ``message_size_mod``, say), outermost first.

    Returns:
        A :class:`FleetResult`.

    Raises:
        ConfigError: fewer devices than the config's minimum counts, or processes < 1.
    """
    from flwr.simulation import run_simulation

    config = config or FleetConfig()
    if len(devices) < max(config.min_available_clients, config.min_train_clients):
        raise ConfigError(
            f"{len(devices)} devices, but the config waits for {config.min_available_clients}; "
            "pass more devices or lower min_available_clients and min_train_clients."
        )
    if processes < 1:
        raise ConfigError(f"processes must be >= 1, got {processes}")
    results: list[FleetResult] = []
    path = str(Path(bundle).resolve())
    backend = {
        "client_resources": {"num_cpus": max(1, (os.cpu_count() or 1) // processes), "num_gpus": 0.0},
        "init_args": {"num_cpus": os.cpu_count() or 1, "include_dashboard": False, "log_to_driver": False},
    }
    run_simulation(
        server_app=server_app(
            path, config, publish=publish, eval_data=eval_data, progress=progress, results=results, runtime=runtime
        ),
        client_app=client_app(path, list(devices), runtime, mods),
        num_supernodes=len(devices),
        backend_config=backend,
    )
    if not results:
        raise ConfigError("The simulation ended before the fleet's rounds finished; see Flower's log above.")
    return results[0]
