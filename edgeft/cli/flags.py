"""Command-line flags made from the settings' declarations (:mod:`edgeft.fields`), and configs made from the flags.

A setting that a command offers (``expose``) becomes ``--its-name`` (or its declared ``flag``) with its type,
choices, help and default; a tuple setting is written comma-separated (``--image-size 224,224``).
"""

from __future__ import annotations

import argparse
import enum
import typing
from typing import Any, TypeVar

from edgeft.config import from_dict
from edgeft.errors import ConfigError
from edgeft.fields import Declared, exposed

T = TypeVar("T")


def add_flags(
    p: Any,
    cls: type,
    command: str,
    *,
    prefix: str = "",
    unset: str = "",
    leave_unset: bool = False,
    notes: dict[str, str] | None = None,
) -> None:
    """Add a flag to ``p`` (a parser or a group) for each setting of ``cls`` that ``command`` offers.

    Args:
        prefix: put before each flag and its destination ("ft-": ``--ft-lr`` into ``args.ft_lr``).
        unset: what an unset flag leaves in place, where that is not the declared default ("the bundle's"); shown
            in the help before the declared default. Implies ``leave_unset``.
        leave_unset: an unset flag is None (left out of :func:`given`), so that the caller's defaults hold.
        notes: more about some settings' defaults, by field name.
    """
    shown = f"{unset}; {cls.__name__}'s: " if unset else ""
    for d in exposed(cls, command):
        _add_flag(p, d, shown, bool(unset) or leave_unset, prefix, (notes or {}).get(d.name, ""))


def _add_flag(p: Any, d: Declared, unset: str, leave_unset: bool, prefix: str, note: str) -> None:
    flag = d.setting.flag or f"--{prefix}{d.name.replace('_', '-')}"
    kwargs: dict[str, Any] = {"dest": prefix.replace("-", "_") + d.name, "default": None if leave_unset else _value(d.default)}
    help_text = f"{d.setting.help} (default: {unset}{_text(d, d.default)}{note})"
    if d.kind is bool and d.default is True:
        flag, kwargs["action"] = f"--no-{flag.removeprefix('--')}", "store_false"
        help_text = f"turn off: {help_text}"
    elif d.kind is bool:
        kwargs["action"] = "store_true"
    elif isinstance(d.kind, type) and issubclass(d.kind, enum.Enum):
        kwargs["choices"] = [m.value for m in d.kind]
    elif d.kind in (int, float):
        kwargs["type"] = d.kind
    if "action" not in kwargs and "choices" not in kwargs:
        kwargs["metavar"] = flag.removeprefix("--").upper().replace("-", "_")
    p.add_argument(flag, help=help_text.replace("%", "%%"), **kwargs)


def _value(value: Any) -> Any:
    """A default as the command line writes it: an enum's value, a tuple comma-separated."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value


def _text(d: Declared, value: Any) -> str:
    if value is None or value == "":
        return d.setting.none
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(_value(value))


def given(args: argparse.Namespace, cls: type, command: str, *, prefix: str = "") -> dict[str, Any]:
    """The settings of ``cls`` that ``command`` offers and were given (or defaulted) on the command line, parsed."""
    values = {}
    for d in exposed(cls, command):
        value = getattr(args, prefix.replace("-", "_") + d.name, None)
        if value is not None:
            values[d.name] = _parse(d, value, d.setting.flag or f"--{prefix}{d.name.replace('_', '-')}")
    return values


def config_from_args(args: argparse.Namespace, cls: type[T], command: str, *, prefix: str = "", **fixed: Any) -> T:
    """``cls`` from its flags on ``command`` (unset ones keep their defaults) and ``fixed`` values."""
    return from_dict(cls, {**given(args, cls, command, prefix=prefix), **fixed})


def _parse(d: Declared, value: Any, flag: str) -> Any:
    if not isinstance(value, str) or typing.get_origin(d.kind) is not tuple:
        return value
    element = typing.get_args(d.kind)[0]
    try:
        return tuple(element(v) for v in value.split(","))
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated {element.__name__} values, got {value!r}") from None
