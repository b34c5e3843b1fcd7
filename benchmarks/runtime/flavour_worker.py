"""Runs inside a device-only venv: ``python benchmarks/runtime/flavour_worker.py import|run SPEC.json``.

``import``: time ``import device_runtime`` and the memory it takes. ``run``:
backbone features per second, then head training on each engine that loads
here, then the peak memory of the whole personalization. Prints one JSON object.
Started by path, from outside the checkout, so only the installed edgeft imports
(and ``benchmarks/harness.py``, loaded by its path, for the peak-memory reading).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path

# By its path (importlib's recipe for a source file): ``benchmarks`` is not importable here, only the installed
# edgeft is, and the harness needs only the standard library at import.
_spec = importlib.util.spec_from_file_location("benchmarks_harness", Path(__file__).resolve().parents[1] / "harness.py")
harness = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)


def measure_import() -> dict:
    started = time.perf_counter()
    import device_runtime  # noqa: F401

    return {"import_s": time.perf_counter() - started, "import_peak_mb": harness.peak_rss_mb()}


def measure_run(spec: dict) -> dict:
    import onnxruntime

    from device_runtime import Personalizer
    from device_runtime.ort_training import training_available
    from edgeft.config import RuntimeConfig

    warnings.simplefilter("ignore")
    texts, labels = spec["texts"], spec["labels"]
    runtime = {"intra_op_threads": spec["threads"][0], "inter_op_threads": spec["threads"][1]}
    personalizer = Personalizer.from_bundle(spec["bundle"], runtime=RuntimeConfig(engine="numpy", **runtime))
    personalizer.predict_proba(texts[:4])  # session warm-up, outside the timing
    started = time.perf_counter()
    personalizer.transform(texts)
    result = {
        "onnxruntime": onnxruntime.__version__,
        "python": sys.version.split()[0],
        "features_per_s": len(texts) / (time.perf_counter() - started),
    }
    engines = ["numpy"] + (["ort"] if training_available() is None else [])
    for engine in ("numpy", "ort"):
        if engine not in engines:
            result[f"train_{engine}_s"] = None
            continue
        p = Personalizer.from_bundle(spec["bundle"], runtime=RuntimeConfig(engine=engine, cache_dir=spec["cache"], **runtime))
        p.fit(texts, labels, epochs=spec["epochs"], accept="always")  # first fit fills the feature cache
        p.fit(texts, labels, epochs=spec["epochs"], accept="always")
        result[f"train_{engine}_s"] = p.report_.train_seconds
    result["peak_mb"] = harness.peak_rss_mb()
    return result


if __name__ == "__main__":
    mode, spec_file = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(spec_file).read_text())
    print(json.dumps(measure_import() if mode == "import" else measure_run(spec)))
