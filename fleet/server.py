"""The server's side of a fleet: rounds of a Flower strategy over the head, then a new bundle version."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from device_runtime import Personalizer
from device_runtime.trainer import Progress, ProgressCallback
from edgeft.bundle import Bundle
from edgeft.config import RuntimeConfig
from edgeft.errors import ConfigError
from fleet.config import FleetConfig
from fleet.heads import from_record, head_bytes, to_record
from fleet.publish import write_fleet_bundle
from fleet.start import closed_form_start
from fleet.statistics import Start
from fleet.strategy import build_strategy, inner


@dataclasses.dataclass
class FleetResult:
    """What a federated run produced."""

    head: dict[str, np.ndarray]  # the global head after the last round
    rounds: list[dict[str, Any]]  # per round: seconds, the devices' training and held-out metrics, central metrics
    refused: list[dict[str, Any]]  # heads refused before aggregation: round, node, reason
    bundles: list[Path]  # bundle versions written (every save_every rounds, and the last)
    provenance: dict[str, Any]  # what the last bundle records in fleet.json
    start: dict[str, Any] = dataclasses.field(default_factory=dict)  # the closed-form start's summary; {} from shipped


@dataclasses.dataclass(frozen=True)
class Publish:
    """Where the global head goes as a bundle version, and whether it is pushed to a registry."""

    output: str  # folder of the new bundle (a round's bundle goes to OUTPUT-roundK)
    version: str | None = None  # None: the source version + "+fleet.<rounds>"
    registry: str | None = None  # registry URL to push the written bundle to
    token: str | None = None  # the registry's publish token
    overwrite: bool = False


def run_fleet(
    grid: Grid,
    bundle: str | Path,
    config: FleetConfig,
    *,
    publish: Publish | None = None,
    eval_data: tuple[Sequence[Any], Sequence[str]] | None = None,
    progress: ProgressCallback | None = None,
    runtime: RuntimeConfig | None = None,
) -> FleetResult:
    """Run ``config.rounds`` rounds of federated training of ``bundle``'s head over the devices on ``grid``.

    Args:
        grid: Flower's grid (simulated or a SuperLink's).
        bundle: the bundle the devices start from (its shipped head is the first global head).
        config: the start (a closed-form head from the devices' statistics, or the shipped one), rounds,
            sampling, aggregation, privacy.
        publish: write (and push) the global head as a bundle version; None writes nothing.
        eval_data: a server-side held-out set (texts or images, labels) scored after every round.
        progress: called with ``Progress("rounds", done, total, metric=central accuracy)`` after each round.
        runtime: how the server's own personalizer runs (its ``cache_dir`` is shared with simulated devices);
            the ORT engine whenever ``publish`` is set, since it writes the ORT checkpoint.

    Returns:
        A :class:`FleetResult`.

    Raises:
        ConfigError: no round produced a head to aggregate; with a closed-form start, too few devices,
            no usable statistics, or an MLP head.
    """
    runtime = runtime or RuntimeConfig()
    if publish:
        runtime = dataclasses.replace(runtime, engine="ort")
    server = Personalizer(Bundle.load(bundle), runtime=runtime)
    shipped = server.head_parameters()
    initial, start = shipped, {}
    if config.start is not Start.SHIPPED:
        initial, start = closed_form_start(grid, config, shipped, len(server.bundle.manifest.labels))
    strategy = build_strategy(config, shipped, len(list(grid.get_node_ids())))
    rounds: list[dict[str, Any]] = []
    bundles: list[Path] = []
    started = [time.monotonic()]

    def after_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        head = from_record(arrays)
        central = _score(server, head, eval_data) if eval_data else {}
        now = time.monotonic()
        if server_round == 0:
            rounds.append({"round": 0, "central": central})
        else:
            rounds.append({"round": server_round, "seconds": now - started[0], "central": central})
            if publish and config.save_every and server_round % config.save_every == 0 and server_round < config.rounds:
                bundles.append(_publish(server, head, publish, config, rounds, strategy, server_round, start, intermediate=True))
            if progress:
                progress(Progress("rounds", server_round, config.rounds, metric=central.get("accuracy")))
        started[0] = time.monotonic()  # the next round's time leaves this evaluation (and any bundle written) out
        return MetricRecord(central) if central else None

    train_config = ConfigRecord(
        {
            "local-epochs": config.local_epochs,
            "local-schedule": config.local_schedule.value,
            "seed": config.seed,
            **({"lr": config.local_lr} if config.local_lr else {}),
        }
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=to_record(initial),
        num_rounds=config.rounds,
        timeout=config.round_timeout,
        train_config=train_config,
        evaluate_fn=after_round,
    )
    for record in rounds[1:]:
        r = record["round"]
        record["train"] = dict(result.train_metrics_clientapp.get(r, {}))
        record["devices"] = dict(result.evaluate_metrics_clientapp.get(r, {}))
        record.update(inner(strategy).counts.get(r, {"clients": 0, "examples": 0}))
    if not result.arrays:  # Flower's Result keeps an empty record when no round aggregated a head
        raise ConfigError("No round aggregated a head: every device failed, dropped out or was refused; see Flower's log.")
    head = from_record(result.arrays)
    provenance = _provenance(config, rounds, strategy, head, config.rounds, start)
    if publish:
        bundles.append(_publish(server, head, publish, config, rounds, strategy, config.rounds, start, intermediate=False))
    return FleetResult(head, rounds, list(inner(strategy).refused), bundles, provenance, start)


def server_app(
    bundle: str | Path,
    config: FleetConfig,
    *,
    publish: Publish | None = None,
    eval_data: tuple[Sequence[Any], Sequence[str]] | None = None,
    progress: ProgressCallback | None = None,
    results: list[FleetResult] | None = None,
    runtime: RuntimeConfig | None = None,
) -> ServerApp:
    """A ServerApp that runs :func:`run_fleet` and appends its result to ``results``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        outcome = run_fleet(grid, bundle, config, publish=publish, eval_data=eval_data, progress=progress, runtime=runtime)
        if results is not None:
            results.append(outcome)

    return app


def _score(server: Personalizer, head: dict[str, np.ndarray], data: tuple[Sequence[Any], Sequence[str]]) -> dict[str, float]:
    server.set_head(head, source="central evaluation")
    report = server.evaluate(list(data[0]), list(data[1]))
    return {"accuracy": report["accuracy"], "loss": report["loss"], "macro-f1": report["macro_f1"]}


def _provenance(
    config: FleetConfig, rounds: list[dict], strategy: Any, head: dict[str, np.ndarray], done: int, start: dict[str, Any]
) -> dict[str, Any]:
    trained = [r for r in rounds[1:] if r["round"] <= done]
    counts = [c for r, c in inner(strategy).counts.items() if r <= done]
    return {
        "rounds": done,
        "clients": max((c["clients"] for c in counts), default=0),  # the most devices averaged in one round
        "examples": sum(c["examples"] for c in counts),  # examples behind every averaged head, all rounds
        "aggregation": config.aggregation.value,
        "privacy": dataclasses.asdict(config.privacy) if config.privacy else None,
        "start": start or {"kind": Start.SHIPPED.value},
        "config": config.provenance(),
        "head_bytes": head_bytes(head),
        "refused": list(inner(strategy).refused),
        "history": [{k: v for k, v in r.items() if k != "seconds"} for r in trained],
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _publish(
    server: Personalizer,
    head: dict[str, np.ndarray],
    publish: Publish,
    config: FleetConfig,
    rounds: list[dict],
    strategy: Any,
    done: int,
    start: dict[str, Any],
    *,
    intermediate: bool,
) -> Path:
    version = publish.version or f"{server.bundle.manifest.version}+fleet.{done}"
    if intermediate:
        version, output = f"{version}.round{done}", Path(f"{publish.output}-round{done}")
    else:
        output = Path(publish.output)
    written = write_fleet_bundle(
        server, head, output, version, _provenance(config, rounds, strategy, head, done, start), overwrite=publish.overwrite
    )
    if publish.registry:
        from edgeft.registry.client import push

        push(written.path, publish.registry, publish.token)
    return written.path
