"""What the commands share: the data, training, runtime and trust options, option types, progress bars and
the formatting of numbers and sizes.
"""

from __future__ import annotations

import argparse
from typing import Any, final

from edgeft.cli.flags import add_flags, config_from_args
from edgeft.config import RuntimeConfig
from edgeft.fields import PERSONALIZE
from edgeft.signing import trust_from_env


def _add_data_args(p: argparse.ArgumentParser, *, labels: bool = True) -> None:
    p.add_argument("--text-column", default="text", help="column holding the text (default: %(default)s)")
    if labels:
        p.add_argument("--label-column", default="label", help="column holding the label (default: %(default)s)")


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, RuntimeConfig, PERSONALIZE)
    _add_trust_arg(p)


def _add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust", default=None, help="trust file: load signed bundles only, by its keys (default: $EDGEFT_TRUST, else none)"
    )


def _port(text: str) -> int:
    """A TCP port, 1-65535: anything else is a usage error naming the option (never a random port bound silently)."""
    port = int(text) if text.isdigit() else 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port; give a number from 1 to 65535")
    return port


def _runtime(args: argparse.Namespace) -> RuntimeConfig:
    return config_from_args(args, RuntimeConfig, PERSONALIZE, trust=trust_from_env(args.trust))


def _csv(values: tuple) -> str:
    return ",".join(f"{v:g}" for v in values)


_LABELLED_FILES = (
    ".csv or .jsonl texts, .npz with X (texts, uint8 images or float tensors) and y, or a .csv of number columns and "
    "a label column (tabular rows)"
)


@final
class _ProgressBars:
    """A progress callback that draws one tqdm bar per stage on the terminal."""

    def __enter__(self) -> _ProgressBars:
        from tqdm import tqdm

        self._tqdm, self._bars = tqdm, {}
        return self

    def __call__(self, progress: Any) -> None:
        bar = self._bars.get(progress.stage)
        if bar is None:
            unit = "example" if progress.stage == "features" else "epoch"
            bar = self._bars[progress.stage] = self._tqdm(total=progress.total, desc=progress.stage, unit=unit, leave=False)
        if progress.loss is not None:
            bar.set_postfix(loss=f"{progress.loss:.4f}", refresh=False)
        bar.update(progress.done - bar.n)
        if progress.done >= progress.total:
            bar.close()
            del self._bars[progress.stage]

    def __exit__(self, *exc: object) -> None:
        for bar in self._bars.values():
            bar.close()


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"
