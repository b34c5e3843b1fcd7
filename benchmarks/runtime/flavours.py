"""Both ONNX Runtime flavours a device can get, side by side: ``python -m benchmarks.runtime.flavours``.

onnxruntime-training-cpu 1.19.2 (CPython 3.11: the base install where its wheels
exist) and plain onnxruntime (CPython 3.13: everywhere else). Each gets a
device-only venv built from edgeft's wheel (tools/device_env.py) and is measured
in processes of its own (benchmarks/runtime/flavour_worker.py): the venv's site-packages
size, ``import device_runtime`` time and memory, MiniLM INT8 backbone features
per second, head training time on each engine that loads there, and the peak
memory of a personalization. Writes ``results.json`` and ``results.md`` into
``--out`` and prints the Markdown table.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks import harness
from tools import device_env

HERE = Path(__file__).resolve().parent
FLAVOURS = {"onnxruntime-training-cpu (CPython 3.11)": "3.11", "onnxruntime (CPython 3.13)": "3.13"}
# The device-only venvs and the bundle are kept between runs and modes: building a venv takes minutes.
STUDY = harness.Study("flavours", work="benchmarks/results/flavours-work")


@dataclasses.dataclass(frozen=True)
class Mode:
    per_class: int  # BBC texts per class to personalize on
    epochs: int  # training epochs
    repeats: int  # fresh processes timing the import


MODES = {"smoke": Mode(per_class=2, epochs=2, repeats=1), "quick": Mode(per_class=12, epochs=20, repeats=3)}


def export_bundle(folder: Path, n_per_class: int) -> tuple[Path, list[str], list[str]]:
    """The INT8 MiniLM bundle of the tests and demo, and BBC texts to personalize on."""
    from edgeft.config import ExportConfig
    from example_data import bbc_news, minilm_path, split_per_class
    from export import ServerData

    server, user = split_per_class(*bbc_news(), [4, n_per_class], seed=0)
    # int8-dynamic by name, as its figures were measured: 20 server texts are too few for auto to prove INT8.
    config = ExportConfig(
        name="minilm-bbc",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        license="apache-2.0",
        quantization="int8-dynamic",
    )
    return harness.cached_bundle(folder / "minilm-bbc", minilm_path(), ServerData(*server), config), user[0], user[1]


def site_packages_mb(venv: Path) -> float:
    """Everything installed in the venv's site-packages but pip itself."""
    site = next(venv.glob("lib/python3.*/site-packages"))
    pip = [p for p in site.iterdir() if p.name.startswith("pip")]
    return (harness.folder_bytes(site) - sum(harness.folder_bytes(p) if p.is_dir() else p.stat().st_size for p in pip)) / 1e6


def worker(bin_dir: Path, mode: str, spec: Path, cwd: Path) -> dict:
    command = [str(bin_dir / "python"), str(HERE / "flavour_worker.py"), mode, str(spec)]
    result = subprocess.run(command, check=False, cwd=cwd, env=device_env.clean_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(name: str, bin_dir: Path, venv: Path, spec: Path, work: Path, repeats: int) -> dict:
    imports = [worker(bin_dir, "import", spec, work) for _ in range(repeats)]
    run = worker(bin_dir, "run", spec, work)
    return {
        "flavour": name,
        "site_packages_mb": site_packages_mb(venv),
        "import_s": statistics.median(i["import_s"] for i in imports),
        "import_peak_mb": statistics.median(i["import_peak_mb"] for i in imports),
        **run,
    }


def markdown(rows: list[dict], spec: dict) -> str:
    def seconds(v: float | None) -> str:
        return "not available" if v is None else f"{v:.2f} s"

    columns = ["flavour", "ORT", "site-packages", "import", "peak after import", "features/s"]
    columns += ["train numpy", "train ORT", "peak personalizing"]
    rows = [
        [
            r["flavour"],
            r["onnxruntime"],
            f"{r['site_packages_mb']:.0f} MB",
            f"{r['import_s']:.2f} s",
            f"{r['import_peak_mb']:.0f} MiB",
            f"{r['features_per_s']:.1f}",
            seconds(r["train_numpy_s"]),
            seconds(r["train_ort_s"]),
            f"{r['peak_mb']:.0f} MiB",
        ]
        for r in rows
    ]
    intro = f"{len(spec['texts'])} BBC texts, MiniLM INT8 backbone, {spec['epochs']} epochs, threads {spec['threads']}."
    return "\n".join([intro, "", *harness.table(columns, rows)])


def main(argv: list[str] | None = None) -> None:
    run = STUDY.start(STUDY.parser(__doc__, MODES).parse_args(argv), MODES)
    mode, work_dir = run.mode, run.work.resolve()
    bundle, texts, labels = export_bundle(work_dir, mode.per_class)
    spec = {"bundle": str(bundle), "texts": texts, "labels": labels, "epochs": mode.epochs, "threads": [2, 1]}
    rows = []
    with tempfile.TemporaryDirectory() as work:
        wheel = device_env.build_wheel(Path(work) / "wheel")
        for name, python in FLAVOURS.items():
            venv = work_dir / f"venv-{python}"
            bin_dir = device_env.ensure_venv(venv, device_env.find_python(python), wheel)
            spec_file = Path(work) / "spec.json"
            spec_file.write_text(json.dumps({**spec, "cache": str(Path(work) / f"cache-{python}")}))
            rows.append(measure(name, bin_dir, venv, spec_file, Path(work), mode.repeats))
            print(f"  {name}: done", flush=True)
    run.results.update(spec={k: v for k, v in spec.items() if k != "texts"}, rows=rows)
    run.save(lambda r: markdown(rows, spec) + "\n")


if __name__ == "__main__":
    main()
