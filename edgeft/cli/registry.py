"""The registry commands: ``registry`` serves one, ``push`` publishes to it, ``pull`` installs from it."""

from __future__ import annotations

import argparse
import os
from typing import Any

from edgeft.cli.common import (
    _port,
    _size,
)
from edgeft.signing import trust_from_env


def _registry_parser(commands: Any) -> None:
    p = commands.add_parser(
        "registry",
        help="serve a bundle registry from a local folder",
        description="Serve bundles from --root. Publishing needs the bearer token in "
        "EDGEFT_REGISTRY_TOKEN; with EDGEFT_REGISTRY_READ_TOKEN set, reading needs a token too.",
    )
    p.add_argument("--root", required=True, help="folder holding the published bundles")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_port, default=8700, help="port to listen on, 1-65535 (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=int, default=None, help="largest upload accepted, in MB (default: 512)")
    p.set_defaults(run=_run_registry)


def _run_registry(args: argparse.Namespace) -> None:
    import uvicorn

    from edgeft.registry.app import create_app
    from edgeft.registry.settings import RegistrySettings

    limit = args.max_upload_mb * 1024 * 1024 if args.max_upload_mb else None
    settings = RegistrySettings.from_env(args.root, max_upload_bytes=limit)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


def _push_parser(commands: Any) -> None:
    p = commands.add_parser("push", help="publish a bundle folder as a new version on a registry")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--registry", required=True, help="registry URL, e.g. http://127.0.0.1:8700")
    p.add_argument("--token", default=None, help="publish token (default: $EDGEFT_REGISTRY_TOKEN)")
    p.set_defaults(run=_run_push)


def _run_push(args: argparse.Namespace) -> None:
    from edgeft.registry.client import push

    answer = push(args.bundle, args.registry, args.token or os.environ.get("EDGEFT_REGISTRY_TOKEN"))
    print(f"published {answer['name']}@{answer['version']}: {answer['files']} files, {_size(answer['bytes'])}")


def _pull_parser(commands: Any) -> None:
    p = commands.add_parser("pull", help="download and install a bundle from a registry, atomically")
    p.add_argument("ref", metavar="NAME[@VERSION]", help="bundle name, optionally @version (default: the latest)")
    p.add_argument("--registry", required=True, help="registry URL, e.g. http://127.0.0.1:8700")
    p.add_argument("--into", required=True, help="device folder; the bundle goes to INTO/NAME/VERSION")
    p.add_argument("--token", default=None, help="read token, if the registry needs one (default: $EDGEFT_REGISTRY_READ_TOKEN)")
    p.add_argument(
        "--trust",
        default=None,
        help="trust file: install only bundles signed by its keys, never an older "
        "version than the installed one (default: $EDGEFT_TRUST, else none: unsigned bundles install with a warning)",
    )
    p.set_defaults(run=_run_pull)


def _run_pull(args: argparse.Namespace) -> None:
    from edgeft.registry.client import pull

    result = pull(
        args.ref,
        args.registry,
        args.into,
        token=args.token or os.environ.get("EDGEFT_REGISTRY_READ_TOKEN"),
        trust=trust_from_env(args.trust),
    )
    resumed = f", resumed {len(result.resumed)} file(s)" if result.resumed else ""
    print(f"installed {result.name}@{result.version} at {result.path} ({_size(result.downloaded_bytes)} downloaded{resumed})")
