"""``python -m benchmarks --mode quick`` (``benchmarks.speed.compare``): prepare, run every alternative in its own process, report.

Writes ``results.json``, ``results.md``, ``comparison.png`` and ``growth_*.png`` into ``--out``
and prints the Markdown. Modes: smoke (~1 min, for the tests), quick (about
6 minutes on 2 cores), full (about 30 minutes on 2 cores). ExecuTorch's rows
build its environment on the first run (about 5 to 8 minutes, once per machine),
export its programs once per results folder (about 4 minutes), and add about
5 minutes to quick mode; ``--no-executorch`` leaves them out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from benchmarks import harness
from benchmarks.speed.config import FP32_BUNDLE, INT8_BUNDLE, MODES

STUDY = harness.Study("speed", out="benchmarks/results/{mode}", work="{out}/cache")


def prepare_executorch(cache: Path, config) -> dict:
    """ExecuTorch's environment (built on demand) and its programs; or why its rows are missing."""
    from benchmarks.executorch.env import build

    try:
        python = build(log=lambda line: print(line, flush=True))
    except RuntimeError as error:
        print(f"ExecuTorch's rows are left out: {error}", flush=True)
        return {"skipped": str(error)}
    print("Exporting the ExecuTorch programs (in its environment) ...", flush=True)
    command = [str(python), "-W", "ignore", "-m", "benchmarks.executorch.export", str(cache), str(config.batch_size)]
    done = subprocess.run(
        [*command, ",".join(config.executorch)],
        capture_output=True,  # torch and torchao log pages of warnings; the program lines go to stdout
        text=True,
        check=False,  # a crash is raised below with its stderr; a failed export is recorded, not raised
        cwd=harness.ROOT,
    )
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise RuntimeError(f"ExecuTorch's export crashed:\n{done.stderr[-3000:]}")
    from benchmarks.executorch.export import export_results

    return {"python": str(python), "exports": export_results(cache)}


def main(argv: list[str] | None = None) -> None:
    parser = STUDY.parser(__doc__, MODES)
    parser.add_argument("--no-executorch", action="store_true", help="leave out ExecuTorch's rows (and its environment)")
    args = parser.parse_args(argv)
    run = STUDY.start(args, MODES)
    config, cache = run.mode, run.work

    # Heavy imports (torch, optimum) only here, after parsing.
    from benchmarks.speed.prepare import prepare
    from benchmarks.speed.report import markdown, plots
    from benchmarks.speed.runners import run_all
    from benchmarks.speed.sizes import bundle_exports, bundle_sizes, install_sizes
    from benchmarks.speed.vision import BUNDLE, VISION, prepare_vision

    print(f"Preparing bundles and the textbook artifacts in {cache} ...", flush=True)
    prepare(cache, config)
    prepare_vision(cache, config.vision_per_class, config.vision_test_per_class, config.seed)
    executorch = {"skipped": "--no-executorch"} if args.no_executorch else prepare_executorch(cache, config)
    print("Running each alternative in its own process:", flush=True)
    et_python = Path(executorch["python"]) if "python" in executorch else None
    results = run_all(cache, config, log=lambda line: print(line, flush=True), executorch=et_python)
    run.results.update(
        results=results,
        executorch=executorch,
        exports=bundle_exports(cache, (INT8_BUNDLE, FP32_BUNDLE, f"{VISION}/{BUNDLE}")),
        sizes={"bundles": bundle_sizes(cache, {"fp32": FP32_BUNDLE, "int8": INT8_BUNDLE}), "install": install_sizes()},
    )
    plots(results, run.out)
    run.save(lambda r: f"{harness.heading(r)}\n\n{markdown(r)}")


if __name__ == "__main__":
    main()
