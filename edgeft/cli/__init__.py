"""The ``edgeft`` command line. Each subcommand parses its arguments and calls
one library function; heavy imports (torch, optimum) happen only in ``export``,
and FastAPI/uvicorn only in ``registry`` and ``serve``.
"""

from __future__ import annotations

import argparse
import sys

from edgeft import __version__, cli_keys
from edgeft.cli.device import (
    DRIFT_EXIT_CODE,
    _drift_parser,
    _evaluate_parser,
    _personalize_parser,
    _predict_parser,
    _rollback_parser,
)
from edgeft.cli.export import _export_parser
from edgeft.cli.fleet import _fleet_parser, fleet_training_arguments
from edgeft.cli.inspect import _inspect_parser
from edgeft.cli.registry import _pull_parser, _push_parser, _registry_parser
from edgeft.cli.serve import _doctor_parser, _serve_parser
from edgeft.errors import EdgeftError

__all__ = ["DRIFT_EXIT_CODE", "fleet_training_arguments", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the (sub)command that was given, with its own usage line, not the top level's
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        code = args.run(args)
    except EdgeftError as e:
        print(f"edgeft {args.command}: error: {e}", file=sys.stderr)
        return 1
    return code or 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeft", description="Export a model once, personalize its head on every device.")
    parser.add_argument("--version", action="version", version=f"edgeft {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for build in (
        _export_parser,
        _inspect_parser,
        _personalize_parser,
        _predict_parser,
        _evaluate_parser,
        _rollback_parser,
        _drift_parser,
        _registry_parser,
        _push_parser,
        _pull_parser,
        _serve_parser,
        _doctor_parser,
        _fleet_parser,
    ):
        build(commands)
    cli_keys.add_parsers(commands)
    _remember_command_parsers(parser)
    return parser


def _remember_command_parsers(parser: argparse.ArgumentParser) -> None:
    """Each (sub)command's parser records itself in the namespace it fills, the innermost last."""
    for action in parser._actions:  # argparse keeps its subcommands there
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.set_defaults(command_parser=command)
                _remember_command_parsers(command)
