"""Each setting declared once: its type (the field's annotation), range or choices (an enum), default and help.

A config dataclass declares every field with :func:`setting` and subclasses :class:`Validated`, whose one
validator (:func:`check`) checks each field against its declaration and then the class's own rules between
fields. The command line's flags (:mod:`edgeft.cli.flags`) and the device service's request models
(:mod:`device_runtime.service.schemas`) are made from the same declarations, so a new setting is one line.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import os
import types
import typing
from collections.abc import Iterator
from typing import Any

from edgeft.errors import ConfigError

# The front ends that offer a setting (Setting.expose): the commands by name, and the device's HTTP service.
EXPORT, PERSONALIZE, DRIFT, SERVICE = "export", "personalize", "drift", "service"
FLEET, FLEET_TRAINING = (
    "fleet",
    "fleet-training",
)  # the fleet commands; how a fleet trains (those and benchmarks/fleet/federated.py)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting's declaration, kept in its dataclass field's metadata."""

    help: str  # what it does, in the words of a flag's help
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    none: str = ""  # what None (or an empty string) means, where allowed ("off", "the bundle's")
    limit: float | None = None  # the most an untrusted request (the device service) may ask: bounds a job's cost
    expose: tuple[str, ...] = ()  # the front ends that offer it (EXPORT, PERSONALIZE, DRIFT, SERVICE)
    flag: str = ""  # its command-line flag, where that is not --the-field-name
    rule: str = ""  # a valid value in words, where the type and range alone do not say it


def setting(default: Any, help: str, **declared: Any) -> Any:
    """A dataclass field with ``default`` and its :class:`Setting` (``help`` plus any of Setting's other fields)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(help, **declared)})


@dataclasses.dataclass(frozen=True)
class Declared:
    """A config dataclass field's declaration, resolved: its name, type, whether None is allowed, default, setting."""

    name: str
    kind: Any  # int, float, bool, str, os.PathLike, an Enum subclass, a tuple[...] type or a config dataclass
    optional: bool
    default: Any
    setting: Setting


@functools.cache
def declarations(cls: type) -> tuple[Declared, ...]:
    """The declared fields of the config dataclass ``cls``, in order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kinds = typing.get_args(hints[f.name]) if isinstance(hints[f.name], types.UnionType) else (hints[f.name],)
        real = tuple(k for k in kinds if k is not type(None))
        out.append(
            Declared(f.name, real[0] if len(real) == 1 else real, len(real) < len(kinds), f.default, f.metadata["setting"])
        )
    return tuple(out)


def exposed(cls: type, front_end: str) -> Iterator[Declared]:
    """The declared fields of ``cls`` that ``front_end`` offers."""
    return (d for d in declarations(cls) if front_end in d.setting.expose)


class Validated:
    """Mixin of the config dataclasses: :func:`check` runs on creation; ``_rules`` adds checks between fields."""

    def __post_init__(self) -> None:
        check(self)

    def _rules(self) -> None:
        """Rules between fields, after each field passed its own declaration; none by default."""


def check(config: Any) -> None:
    """Check (and normalise: enums from their values, tuples from lists) every field of ``config``, then its rules.

    Raises:
        ConfigError: naming the class, the field, the value given and what a valid value is.
    """
    for d in declarations(type(config)):
        value = getattr(config, d.name)
        if value is None and d.optional:
            continue
        normal = _normalise(d, value)
        if normal is _INVALID:
            default = d.default.value if isinstance(d.default, enum.Enum) else d.default
            sep = ";" if isinstance(d.kind, type) and issubclass(d.kind, enum.Enum) else ","
            raise ConfigError(
                f"{type(config).__name__}.{d.name} must be {requirement(d)}{sep} got {value!r} (default: {default!r})"
            )
        object.__setattr__(config, d.name, normal)
    config._rules()


_INVALID = object()


def _normalise(d: Declared, value: Any) -> Any:
    kinds = d.kind if isinstance(d.kind, tuple) else (d.kind,)
    for kind in kinds:
        if typing.get_origin(kind) is tuple:
            normal = _tuple(kind, d.setting, value)
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            normal = _member(kind, value)
        else:
            normal = value if _scalar(kind, d.setting, value) else _INVALID
        if normal is not _INVALID:
            return normal
    return _INVALID


def _member(kind: type[enum.Enum], value: Any) -> Any:
    try:
        return kind(value)
    except (ValueError, TypeError):
        return _INVALID


def _tuple(kind: Any, s: Setting, value: Any) -> Any:
    parts = typing.get_args(kind)
    if isinstance(value, str) and parts == (str, ...):
        value = (value,)  # one provider, say, needs no list around it
    if not isinstance(value, (list, tuple)) or not value:
        return _INVALID
    element, fixed = parts[0], parts[1:] != (...,)
    if fixed and len(value) != len(parts):
        return _INVALID
    valid = all(_scalar(element, s, v) and (element is not str or v) for v in value)  # names are never empty
    return tuple(value) if valid else _INVALID


def _scalar(kind: Any, s: Setting, value: Any) -> bool:
    if kind is bool or kind is str:
        return isinstance(value, kind)
    if kind is os.PathLike or dataclasses.is_dataclass(kind):  # a path; a nested config, checked when it was made
        return isinstance(value, kind)
    number = isinstance(value, int) if kind is int else isinstance(value, (int, float)) and math.isfinite(value)
    return number and not isinstance(value, bool) and _in_range(value, s)


def _in_range(value: float, s: Setting) -> bool:
    return (
        (s.ge is None or value >= s.ge)
        and (s.gt is None or value > s.gt)
        and (s.le is None or value <= s.le)
        and (s.lt is None or value < s.lt)
    )


def requirement(d: Declared) -> str:
    """What a valid value of ``d`` is, in words: "a positive integer", "in [0, 1)", "one of auto, none"."""
    text = d.setting.rule or _kind_words(d.kind, d.setting)
    return f"{text} or None ({d.setting.none})" if d.optional else text


def _kind_words(kind: Any, s: Setting) -> str:
    if isinstance(kind, tuple):
        return "a path"  # str | os.PathLike, the one union of kinds declared
    if typing.get_origin(kind) is tuple:
        parts = typing.get_args(kind)
        count = "one or more" if parts[1:] == (...,) else str(len(parts))
        return f"a list of {count} values, each {_kind_words(parts[0], s)}"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "one of " + ", ".join(m.value for m in kind)
    if kind is bool:
        return "True or False"
    if kind is str:
        return "a string"
    if kind is int:
        return "a positive integer" if (s.ge, s.gt, s.le, s.lt) == (1, None, None, None) else f"an integer {_bounds(s)}".rstrip()
    return f"a finite number {_bounds(s)}".rstrip() if s.le is None and s.lt is None else f"in {_interval(s)}"


def _bounds(s: Setting) -> str:
    low = f">= {s.ge:g}" if s.ge is not None else f"> {s.gt:g}" if s.gt is not None else ""
    high = f"<= {s.le:g}" if s.le is not None else f"< {s.lt:g}" if s.lt is not None else ""
    return " and ".join(b for b in (low, high) if b)


def _interval(s: Setting) -> str:
    low = f"[{s.ge:g}" if s.ge is not None else f"({s.gt:g}" if s.gt is not None else "(-inf"
    high = f"{s.le:g}]" if s.le is not None else f"{s.lt:g})"
    return f"{low}, {high}"
