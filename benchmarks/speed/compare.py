"""``python -m benchmarks --mode quick``: prepare, run every alternative in its own process, report.

Writes ``results.json``, ``results.md``, ``comparison.png`` and ``growth_*.png`` into ``--out``
and prints the Markdown. Modes: smoke (~1 min, for the tests), quick (about
6 minutes on 2 cores), full (about 30 minutes on 2 cores). ExecuTorch's rows
build its environment on the first run (about 5 to 8 minutes, once per machine),
export its programs once per results folder (about 4 minutes), and add about
5 minutes to quick mode; ``--no-executorch`` leaves them out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from benchmarks.config import FP32_BUNDLE, INT8_BUNDLE, MODES


def machine() -> str:
    """What the numbers were measured on."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def prepare_executorch(cache: Path, config) -> dict:
    """ExecuTorch's environment (built on demand) and its programs; or why its rows are missing."""
    from benchmarks.executorch_env import build

    try:
        python = build(log=lambda line: print(line, flush=True))
    except RuntimeError as error:
        print(f"ExecuTorch's rows are left out: {error}", flush=True)
        return {"skipped": str(error)}
    print("Exporting the ExecuTorch programs (in its environment) ...", flush=True)
    command = [str(python), "-W", "ignore", "-m", "benchmarks.executorch_export", str(cache), str(config.batch_size)]
    done = subprocess.run(
        [*command, ",".join(config.executorch)],
        capture_output=True,  # torch and torchao log pages of warnings; the program lines go to stdout
        text=True,
        check=False,  # a crash is raised below with its stderr; a failed export is recorded, not raised
        cwd=Path(__file__).resolve().parent.parent,
    )
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise RuntimeError(f"ExecuTorch's export crashed:\n{done.stderr[-3000:]}")
    from benchmarks.executorch_export import export_results

    return {"python": str(python), "exports": export_results(cache)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick", help="how much work (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results/MODE)")
    parser.add_argument("--no-executorch", action="store_true", help="leave out ExecuTorch's rows (and its environment)")
    args = parser.parse_args()
    config = MODES[args.mode]
    out = args.out or Path("benchmarks/results") / args.mode
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"

    # Heavy imports (torch, optimum) only here, after parsing.
    from benchmarks.prepare import prepare
    from benchmarks.report import markdown, plots
    from benchmarks.runners import run_all
    from benchmarks.sizes import bundle_exports, bundle_sizes, install_sizes
    from benchmarks.vision import prepare_vision

    started = time.perf_counter()
    print(f"Preparing bundles and the textbook artifacts in {cache} ...", flush=True)
    prepare(cache, config)
    prepare_vision(cache, config.vision_per_class, config.vision_test_per_class, config.seed)
    executorch = {"skipped": "--no-executorch"} if args.no_executorch else prepare_executorch(cache, config)
    print("Running each alternative in its own process:", flush=True)
    et_python = Path(executorch["python"]) if "python" in executorch else None
    results = run_all(cache, config, log=lambda line: print(line, flush=True), executorch=et_python)
    run = {
        "mode": args.mode,
        "config": dataclasses.asdict(config),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": results,
        "executorch": executorch,
        "exports": bundle_exports(cache),
        "sizes": {"bundles": bundle_sizes(cache, {"fp32": FP32_BUNDLE, "int8": INT8_BUNDLE}), "install": install_sizes()},
    }
    run["duration_s"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(run, indent=2))
    report = f"Mode `{args.mode}` on {run['machine']}, {run['date']} ({run['duration_s']:.0f} s in all).\n\n" + markdown(run)
    (out / "results.md").write_text(report)
    plots(results, out)
    print(report)


if __name__ == "__main__":
    main()
