"""Peak memory and time of caching N backbone features: ``python -m benchmarks.runtime.device_cache --mode quick``.

Quick: 100k MiniLM-sized vectors under a 64 MB memory budget (the rest spills to disk). Writes
``results.json`` and ``results.md`` into ``--out`` and prints the line.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import harness
from device_runtime.cache import FeatureCache

STUDY = harness.Study("device-cache", work=None)


@dataclasses.dataclass(frozen=True)
class Mode:
    n: int  # features cached
    memory_mb: float  # the cache's memory budget
    dim: int = 384  # MiniLM's feature size


MODES = {"smoke": Mode(n=10_000, memory_mb=4.0), "quick": Mode(n=100_000, memory_mb=64.0), "full": Mode(1_000_000, 64.0)}


def measure(mode: Mode) -> dict[str, float | str]:
    """Put every feature (256 at a time), then read them back as one matrix; seconds and memory."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache("bench", mode.dim, int(mode.memory_mb * 2**20), folder)
        keys = [FeatureCache.key_of(f"example {i}") for i in range(mode.n)]
        started = time.perf_counter()
        for start in range(0, mode.n, 256):
            cache.put(keys[start : start + 256], rng.standard_normal((len(keys[start : start + 256]), mode.dim), np.float32))
        put_s = time.perf_counter() - started
        started = time.perf_counter()
        matrix = cache.matrix(keys)
        float(np.asarray(matrix[::1000]).sum())  # touch the rows, as a reader would
        matrix_s = time.perf_counter() - started
        anon = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("RssAnon"))
        return {
            "put_s": put_s,
            "matrix_s": matrix_s,
            "matrix_type": type(matrix).__name__,
            "features_mb": mode.n * mode.dim * 4 / 2**20,
            "peak_rss_mb": harness.peak_rss_mb(),
            "anonymous_rss_mb": int(anon.split()[1]) / 1024,
        }


def report(results: dict) -> str:
    mode, r = results["config"], results["measured"]
    return (
        f"n={mode['n']} dim={mode['dim']} budget={mode['memory_mb']} MB: put {r['put_s']:.2f}s, matrix {r['matrix_s']:.2f}s "
        f"({r['matrix_type']}), features {r['features_mb']:.0f} MB, peak RSS {r['peak_rss_mb']:.0f} MB, "
        f"anonymous RSS then {r['anonymous_rss_mb']:.0f} MB\n"
    )


def main(argv: list[str] | None = None) -> None:
    run = STUDY.start(STUDY.parser(__doc__, MODES).parse_args(argv), MODES)
    run.results["measured"] = measure(run.mode)
    run.save(report)


if __name__ == "__main__":
    main()
