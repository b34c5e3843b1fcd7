"""Run the attack and print, per category, the kinds tried and what went wrong (see tools/attack/__init__.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tools.attack import inputs, state, tamper
from tools.attack.common import Tally


def _categories(bundles: Path, quick: bool) -> dict[str, Callable[[], list[Tally]]]:
    text = bundles / "text"

    def run(name: str, *steps: Callable[[Tally], None]) -> list[Tally]:
        tally = Tally(name)
        for step in steps:
            step(tally)
        return [tally]

    def tampered() -> list[Tally]:
        without, under = Tally("tampered bundles, no trust policy"), Tally("tampered bundles, trust policy")
        tamper.bundles(bundles, without, under, quick)
        return [without, under]

    return {
        "inputs": lambda: run(
            "bad inputs (API, CLI, HTTP)",
            lambda t: inputs.api(bundles, t),
            *(() if quick else (lambda t: inputs.cli(bundles, t),)),
            lambda t: inputs.http(bundles, t),
        ),
        "tampered": tampered,
        "unverified": lambda: run("signed then altered, no policy: warned", lambda t: tamper.silent(bundles, t)),
        "entry-points": lambda: run("trust over every entry point", lambda t: tamper.entry_points(bundles, t)),
        "state": lambda: run("state tampering", lambda t: state.tampering(text, t)),
        "non-finite": lambda: run("non-finite heads", lambda t: state.non_finite(text, t)),
        "concurrent": lambda: run(
            "concurrent writers and a reader",
            lambda t: state.concurrent(text, t, trials=1 if quick else 3, loops=5 if quick else 15),
        ),
        "kills": lambda: run("SIGKILLs of a fit+save loop", lambda t: state.kills(text, t, 3 if quick else 40)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.attack", description=__doc__)
    p.add_argument("--bundles", required=True, type=Path, help="folder with a text/ and an image/ bundle")
    p.add_argument("--mode", choices=("quick", "full"), default="full", help="quick: fewer kinds, for a smoke test")
    p.add_argument("--only", nargs="*", default=None, help="categories to run (default: all)")
    p.add_argument("--out", type=Path, default=None, help="write the counts and failure examples as JSON here")
    args = p.parse_args(argv)
    categories = _categories(args.bundles, args.mode == "quick")
    tallies: list[Tally] = []
    for name, run in categories.items():
        if args.only and name not in args.only:
            continue
        start = time.monotonic()
        found = run()
        tallies += found
        for tally in found:
            print(f"{tally.name}: {tally.kinds} kinds, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    print(table(tallies))
    if args.out:
        args.out.write_text(json.dumps([dataclasses.asdict(t) for t in tallies], indent=2))
    return 1 if any(t.untyped or t.bypasses for t in tallies) else 0


def table(tallies: list[Tally]) -> str:
    """The counts as a markdown table, then the first failures of each category."""
    rows = [
        "| category | kinds | typed refusals | accepted | untyped failures | bypasses / unloadable |",
        "|---|---|---|---|---|---|",
    ]
    rows += [f"| {t.name} | {t.kinds} | {t.typed} | {t.accepted} | {t.untyped} | {t.bypasses} |" for t in tallies]
    total = sum(t.kinds for t in tallies)
    rows.append(f"| all | {total} | {sum(t.typed for t in tallies)} | {sum(t.accepted for t in tallies)} | "
                f"{sum(t.untyped for t in tallies)} | {sum(t.bypasses for t in tallies)} |")  # fmt: skip
    for t in tallies:
        rows += [f"  {t.name}: {f}" for f in t.failures[:12]]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
