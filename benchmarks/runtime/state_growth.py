"""Save time and state size as head versions pile up: ``python -m benchmarks.runtime.state_growth``.

A real Personalizer on a real MiniLM bundle (numpy engine) records one new head
version after another and saves after each, as a device that personalizes
every day would. Two policies are measured, the default retention
(``RuntimeConfig.keep_versions=10``) and none (every version kept, which shows
what the incremental save alone does). Writes ``results.json``,
``results.md`` and ``state_growth.png`` into ``--out`` and prints the table.

Timings depend on the disk (each save fsyncs its new files); compare the rows
of one run, not runs on different machines.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import harness
from device_runtime import Personalizer
from edgeft.config import ExportConfig, RuntimeConfig
from edgeft.signing import UnsignedBundleWarning
from example_data import bbc_news, minilm_path, split_per_class

STUDY = harness.Study("state-growth")
CHECKPOINTS = (1, 10, 50, 100, 200, 500, 1000)
POLICIES = {"keep 10 (default)": 10, "keep all": 10**9}


@dataclasses.dataclass(frozen=True)
class Mode:
    versions: int  # head versions to add, saving after each


MODES = {"smoke": Mode(versions=10), "quick": Mode(versions=1000)}


def export_bundle(folder: Path) -> Path:
    """The test suite's MiniLM bundle: INT8 backbone, head trained on 4 BBC articles per class."""
    from export import ServerData

    texts, labels = bbc_news()
    (server,) = split_per_class(texts, labels, [4], seed=0)
    # int8-dynamic by name, as its figures were measured: 20 server texts are too few for auto.
    config = ExportConfig(name="minilm-bbc", base_model="sentence-transformers/all-MiniLM-L6-v2", quantization="int8-dynamic")
    return harness.cached_bundle(folder, minilm_path(), ServerData(*server), config)


def measure(bundle: Path, keep: int, versions: int, work: Path) -> list[dict[str, float]]:
    """Add ``versions`` heads one by one, saving after each; a row at every checkpoint."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsignedBundleWarning)  # the test bundle is unsigned on purpose
        personalizer = Personalizer.from_bundle(bundle, runtime=RuntimeConfig(engine="numpy", keep_versions=keep))
    shipped = personalizer.head_parameters()
    rng = np.random.default_rng(0)
    state, rows, window = work / f"state-{keep}", [], []
    for n in range(1, versions + 1):
        heads = {k: (v + rng.normal(0, 1e-3, v.shape)).astype(v.dtype) for k, v in shipped.items()}
        personalizer.versions_.add(heads, {"loss": 1.0, "accuracy": 0.9, "macro_f1": 0.9})
        started = time.perf_counter()
        personalizer.save(state)
        window.append(time.perf_counter() - started)
        if n in CHECKPOINTS:
            size = sum(f.stat().st_size for f in state.iterdir() if f.is_file())
            rows.append(
                {
                    "versions": n,
                    "save_ms_mean": 1e3 * float(np.mean(window)),
                    "save_ms_max": 1e3 * max(window),
                    "kept": len(personalizer.versions),
                    "state_kb": size / 1e3,
                }
            )
            window = []
    return rows


def markdown(results: dict[str, list[dict[str, float]]]) -> str:
    columns = ["policy", "versions saved", "kept", "save (ms, mean since last row)", "save (ms, max)", "state size (kB)"]
    rows = [
        [policy, r["versions"], r["kept"], f"{r['save_ms_mean']:.1f}", f"{r['save_ms_max']:.1f}", f"{r['state_kb']:.0f}"]
        for policy, policy_rows in results.items()
        for r in policy_rows
    ]
    return "\n".join(harness.table(columns, rows))


def plot(results: dict[str, list[dict[str, float]]], path: Path) -> None:
    fig, (time_ax, size_ax) = harness.figure(1, 2, figsize=(10, 4), dpi=120)
    for policy, rows in results.items():
        x = [r["versions"] for r in rows]
        time_ax.plot(x, [r["save_ms_mean"] for r in rows], marker="o", label=policy)
        size_ax.plot(x, [r["state_kb"] for r in rows], marker="o", label=policy)
    for ax, label in ((time_ax, "save time (ms, mean)"), (size_ax, "state size on disk (kB)")):
        ax.set_xscale("log")
        ax.set_xlabel("head versions saved")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.legend()
    fig.suptitle("Personalizer.save as versions pile up (MiniLM bundle, 5 x 384 head)")
    fig.tight_layout()
    harness.write_png(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = STUDY.parser(__doc__, MODES)
    parser.add_argument("--bundle", type=Path, default=None, help="a text bundle (default: export the MiniLM test bundle)")
    args = parser.parse_args(argv)
    run = STUDY.start(args, MODES)
    bundle = args.bundle or export_bundle(run.work / "bundle")
    with tempfile.TemporaryDirectory() as work:
        results = {policy: measure(bundle, keep, run.mode.versions, Path(work)) for policy, keep in POLICIES.items()}
    run.results["policies"] = results
    plot(results, run.out / "state_growth.png")
    run.save(lambda r: markdown(r["policies"]) + "\n")


if __name__ == "__main__":
    main()
