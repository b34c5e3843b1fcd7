"""``edgeft serve`` (the device's HTTP service) and ``edgeft doctor`` (facts for a bug report)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgeft.cli.common import (
    _add_trust_arg,
    _port,
)
from edgeft.signing import trust_from_env


def _serve_parser(commands: Any) -> None:
    p = commands.add_parser("serve", help="serve a bundle or personalized state over HTTP for apps on the device")
    p.add_argument("model", help="bundle folder, or a state folder saved by `personalize`")
    p.add_argument(
        "--state",
        default=None,
        help="folder for the personalized head and the examples database "
        "(default: the state folder given, or MODEL-state beside a bundle)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_port, default=8701, help="port to listen on, 1-65535 (default: %(default)s)")
    p.add_argument(
        "--retrain-on-drift",
        type=int,
        default=None,
        metavar="N",
        help="start a personalization job when drift is detected and N or more labelled examples were "
        "stored since the last job (default: off)",
    )
    _add_trust_arg(p)
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from device_runtime.service.app import create_app
    from device_runtime.service.served import load_served
    from device_runtime.service.settings import ServiceSettings
    from device_runtime.state import STATE_FILE
    from edgeft.errors import BundleError
    from edgeft.layout import MANIFEST

    if not any((Path(args.model) / name).is_file() for name in (STATE_FILE, MANIFEST)):
        raise BundleError(
            f"{args.model} is neither a bundle ({MANIFEST}) nor a saved state ({STATE_FILE}); "
            "pull a bundle with `edgeft pull` or save a state with `edgeft personalize`."
        )
    settings = ServiceSettings.for_model(
        args.model, state_dir=args.state, retrain_on_drift=args.retrain_on_drift, trust=trust_from_env(args.trust)
    )
    load_served(settings)  # refusals (trust policy, damaged state) as one typed error here, not a failed server startup
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


def _doctor_parser(commands: Any) -> None:
    p = commands.add_parser("doctor", help="print Python, platform, ONNX Runtime and training engine, for a bug report")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(run=_run_doctor)


def _run_doctor(args: argparse.Namespace) -> None:
    from device_runtime.doctor import diagnose

    diagnosis = diagnose()
    print(json.dumps(diagnosis.to_dict(), indent=2) if args.json else "\n".join(diagnosis.lines()))
