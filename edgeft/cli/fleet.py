"""``edgeft fleet simulate|serve|join``: federated learning of the head; fleet and Flower are imported only
when a fleet command runs (``fleet.config`` for the defaults when the parser is built).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from edgeft.cli.common import _add_data_args, _port, _ProgressBars
from edgeft.cli.flags import add_flags, config_from_args, given
from edgeft.config import (
    Engine,
    RuntimeConfig,
)
from edgeft.errors import ConfigError
from edgeft.fields import FLEET, FLEET_TRAINING


def _fleet_parser(commands: Any) -> None:
    p = commands.add_parser(
        "fleet",
        help="federated learning of the head across many devices (Flower; the fleet extra)",
        description="Devices personalize the global head on their own data (the acceptance guard "
        "included) and send back only its arrays; the server averages them and writes a new bundle version.",
    )
    sub = p.add_subparsers(dest="fleet_command", metavar="FLEET_COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bundle", required=True, help="the bundle every device starts from (required)")
    runs = _runs_parser()
    _fleet_simulate_parser(sub, common, runs)
    _fleet_serve_parser(sub, common, runs)
    _fleet_join_parser(sub, common)


def _runs_parser() -> argparse.ArgumentParser:
    """The options of a federated run (simulate, serve): its output, its rounds, its privacy."""
    from fleet.config import FleetConfig, PrivacyConfig

    runs = argparse.ArgumentParser(add_help=False)
    runs.add_argument("--output", required=True, help="folder of the new bundle version with the global head (required)")
    runs.add_argument("--bundle-version", help="the new version's name (default: the source's version + '+fleet.ROUNDS')")
    runs.add_argument("--overwrite", action="store_true", help="replace an existing --output (default: off)")
    runs.add_argument("--registry", help="push the written bundle to this registry URL (default: no push)")
    runs.add_argument("--token", help="the registry's publish token (default: $EDGEFT_REGISTRY_TOKEN)")
    add_flags(runs, FleetConfig, FLEET)
    fleet_training_arguments(runs)
    runs.add_argument(
        "--dp",
        action="store_true",
        help="central differential privacy: clip each device's update, add Gaussian noise to the mean (default: off)",
    )
    add_flags(runs, PrivacyConfig, FLEET, prefix="dp-")
    return runs


def _fleet_simulate_parser(sub: Any, common: argparse.ArgumentParser, runs: argparse.ArgumentParser) -> None:
    s = sub.add_parser(
        "simulate",
        parents=[common, runs],
        help="simulate a fleet on this machine with Flower's simulation engine",
        description="Split --data into --devices simulated devices (labels drawn from Dirichlet(--alpha)), run "
        "the rounds with Flower's simulation engine, write the global head as a bundle version.",
    )
    s.add_argument(
        "--data", required=True, help="labelled examples to split across the devices: .csv/.jsonl texts or .npz (required)"
    )
    s.add_argument("--devices", type=int, default=10, help="simulated devices (default: %(default)s)")
    s.add_argument(
        "--alpha",
        type=float,
        default=1.0,
        help="Dirichlet concentration of each device's label mix; small is non-IID (default: %(default)s)",
    )
    s.add_argument("--min-examples", type=int, default=8, help="fewest examples on a device (default: %(default)s)")
    s.add_argument("--max-examples", type=int, default=40, help="most examples on a device (default: %(default)s)")
    s.add_argument(
        "--test-fraction",
        type=float,
        default=0.3,
        help="share of each device's examples it holds out to score the global head (default: %(default)s)",
    )
    s.add_argument("--eval-data", help="a server-side held-out set scored after every round (default: none)")
    s.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        default=RuntimeConfig.engine.value,
        help="the devices' head-training engine (default: %(default)s)",
    )
    s.add_argument(
        "--cache-dir",
        help="folder that keeps backbone features between runs and devices (default: a temporary folder per process)",
    )
    s.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes running the devices; each loads the backbone once (default: %(default)s)",
    )
    _add_data_args(s)
    s.set_defaults(run=_run_fleet_simulate)


def _fleet_serve_parser(sub: Any, common: argparse.ArgumentParser, runs: argparse.ArgumentParser) -> None:
    v = sub.add_parser(
        "serve",
        parents=[common, runs],
        help="run a SuperLink and the fleet's rounds over the devices that join it",
        description="Start a Flower SuperLink, wait for --min-clients SuperNodes (edgeft fleet join), run the "
        "rounds, write the bundle version, stop.",
    )
    v.add_argument("--host", default="127.0.0.1", help="address the SuperLink listens on (default: %(default)s)")
    v.add_argument("--port", type=_port, default=9092, help="the SuperLink's port (default: %(default)s)")
    v.add_argument("--timeout", type=float, default=3600.0, help="seconds the whole run may take (default: %(default)s)")
    v.add_argument("--log", help="file for the SuperLink's log (default: this terminal)")
    _tls_args(v, server=True)
    v.set_defaults(run=_run_fleet_serve)


def _fleet_join_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    j = sub.add_parser(
        "join",
        parents=[common],
        help="take part in a fleet as one device (a Flower SuperNode)",
        description="Start a Flower SuperNode with this device's bundle and data; only the head's arrays leave it. "
        "It runs until interrupted, or for --max-seconds.",
    )
    j.add_argument("--data", required=True, help="this device's labelled examples (.csv, .jsonl or .npz) (required)")
    j.add_argument("--test-data", required=True, help="its held-out examples, to score each global head (required)")
    j.add_argument("--superlink", default="127.0.0.1:9092", help="the SuperLink's host:port (default: %(default)s)")
    j.add_argument(
        "--port",
        type=_port,
        default=9094,
        help="this SuperNode's own port; one per SuperNode on a machine (default: %(default)s)",
    )
    j.add_argument(
        "--max-wait",
        type=float,
        default=30.0,
        help="seconds of connection errors before a request to the SuperLink gives up (default: %(default)s)",
    )
    j.add_argument(
        "--max-seconds", type=float, help="stop the SuperNode after this many seconds (default: run until interrupted)"
    )
    _tls_args(j, server=False)
    j.set_defaults(run=_run_fleet_join)


def _tls_args(p: argparse.ArgumentParser, *, server: bool) -> None:
    p.add_argument("--tls-ca", help="PEM file of the CA that signed the SuperLink's certificate (default: none; TLS needs it)")
    if server:
        p.add_argument("--tls-cert", help="PEM file of the SuperLink's certificate (default: none; TLS needs it)")
        p.add_argument("--tls-key", help="PEM file of the certificate's private key (default: none; TLS needs it)")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="no TLS: plain HTTP, for tests and trusted networks only; without it, the TLS files are required (default: off)",
    )


def _tls(args: argparse.Namespace) -> Any:
    """The TLS files given, or None where --insecure was asked for; neither is an error."""
    from fleet.deployment import Tls

    if args.insecure:
        return None
    if not args.tls_ca:
        raise ConfigError("Give the TLS files (--tls-ca, and for serve --tls-cert and --tls-key), or pass --insecure.")
    return Tls(args.tls_ca, getattr(args, "tls_cert", None), getattr(args, "tls_key", None))


def fleet_training_arguments(p: argparse.ArgumentParser) -> None:
    """How a fleet trains: its start, aggregation and local training (the fleet commands' and benchmarks/fleet/federated.py's)."""
    from fleet.config import FleetConfig

    add_flags(p, FleetConfig, FLEET_TRAINING)


def _fleet_config(args: argparse.Namespace) -> Any:
    from fleet.config import FleetConfig, PrivacyConfig

    privacy = config_from_args(args, PrivacyConfig, FLEET, prefix="dp-") if args.dp else None
    return config_from_args(args, FleetConfig, FLEET, **given(args, FleetConfig, FLEET_TRAINING), privacy=privacy)


def _publish(args: argparse.Namespace) -> Any:
    from fleet.server import Publish

    return Publish(
        args.output, args.bundle_version, args.registry, args.token or os.environ.get("EDGEFT_REGISTRY_TOKEN"), args.overwrite
    )


def _run_fleet_simulate(args: argparse.Namespace) -> None:
    from edgeft.data import read_examples
    from fleet.partition import dirichlet_devices
    from fleet.simulation import simulate

    config = _fleet_config(args)
    X, y = read_examples(args.data, text_column=args.text_column, label_column=args.label_column)
    devices = dirichlet_devices(
        X,
        y,
        args.devices,
        args.alpha,
        sizes=(args.min_examples, args.max_examples),
        test_fraction=args.test_fraction,
        seed=args.seed,
    )
    eval_data = (
        read_examples(args.eval_data, text_column=args.text_column, label_column=args.label_column) if args.eval_data else None
    )
    with _ProgressBars() as bars:
        result = simulate(
            args.bundle,
            devices,
            config,
            publish=_publish(args),
            eval_data=eval_data,
            runtime=RuntimeConfig(engine=args.engine, cache_dir=args.cache_dir),
            processes=args.processes,
            progress=bars,
        )
    for r in result.rounds[1:]:
        central = f", central accuracy {r['central']['accuracy']:.4f}" if r["central"] else ""
        held = r["devices"].get("accuracy")
        print(
            f"round {r['round']}: {r['clients']} devices, {r['examples']} examples, {r['seconds']:.1f}s"
            + (f", devices' held-out accuracy {held:.4f}" if held is not None else "")
            + central
        )
    refused = f"; refused {len(result.refused)} head(s)" if result.refused else ""
    print(f"wrote {', '.join(map(str, result.bundles))}{refused}")


def _run_fleet_serve(args: argparse.Namespace) -> int | None:
    from fleet.deployment import Endpoint, serve

    try:
        out = serve(
            args.bundle,
            _fleet_config(args),
            _publish(args),
            endpoint=Endpoint(args.host, args.port),
            timeout=args.timeout,
            log=Path(args.log) if args.log else None,
            tls=_tls(args),
        )
    except KeyboardInterrupt:
        print("stopped: the SuperLink and the processes it started have ended", file=sys.stderr)
        return 130
    provenance = json.loads((out / "fleet.json").read_text())
    print(f"wrote {out}: {provenance['rounds']} rounds, up to {provenance['clients']} devices, {provenance['examples']} examples")


def _run_fleet_join(args: argparse.Namespace) -> int | None:
    from fleet.deployment import Endpoint, join, run_node

    host, _, port = args.superlink.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--superlink must be host:port, got {args.superlink!r}")
    node = join(
        args.bundle,
        args.data,
        args.test_data,
        superlink=Endpoint(host, int(port)),
        port=args.port,
        max_wait=args.max_wait,
        tls=_tls(args),
    )
    try:
        run_node(node, args.max_seconds)
    except KeyboardInterrupt:
        print("stopped: the SuperNode and its ClientApp processes have ended", file=sys.stderr)
        return 130
    return None
