"""Peak memory and time of caching N backbone features (default 100k MiniLM-sized vectors).

Usage: python benchmarks/device_cache.py [N] [MEMORY_MB]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time

import numpy as np

from device_runtime.cache import FeatureCache


def main(n: int = 100_000, memory_mb: float = 64.0, dim: int = 384) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache("bench", dim, int(memory_mb * 2**20), folder)
        keys = [FeatureCache.key_of(f"example {i}") for i in range(n)]
        started = time.perf_counter()
        for start in range(0, n, 256):
            cache.put(keys[start : start + 256], rng.standard_normal((len(keys[start : start + 256]), dim), np.float32))
        put_s = time.perf_counter() - started
        started = time.perf_counter()
        matrix = cache.matrix(keys)
        total = float(np.asarray(matrix[::1000]).sum())
        matrix_s = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with open("/proc/self/status") as status:
            anon = next(line for line in status if line.startswith("RssAnon")).split()[1]
        print(
            f"n={n} dim={dim} budget={memory_mb} MB: put {put_s:.2f}s, matrix {matrix_s:.2f}s "
            f"({type(matrix).__name__}), features {n * dim * 4 / 2**20:.0f} MB, peak RSS {peak_mb:.0f} MB, "
            f"anonymous RSS now {int(anon) / 1024:.0f} MB ({total:.1f})"
        )
        del matrix


if __name__ == "__main__":
    main(*(int(sys.argv[1]),) if len(sys.argv) > 1 else (), *(float(sys.argv[2]),) if len(sys.argv) > 2 else ())
