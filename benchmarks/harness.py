"""What every study does alike around its own runs: its command line, its folders, its cached bundles, its report.

A study is one module in a topic folder (``benchmarks/<group>/<study>.py``) that declares its modes and where
its results go, and keeps only its own logic::

    STUDY = harness.Study("my-study", docs={"quick": "docs/my-study"})  # results/NAME-MODE, or docs/ for quick
    MODES = {"smoke": Mode(seeds=1, ...), "quick": Mode(seeds=3, ...), "full": Mode(seeds=5, ...)}

    def main(argv: list[str] | None = None) -> None:
        run = STUDY.start(STUDY.parser(__doc__, MODES).parse_args(argv), MODES)  # --mode, --out, --seeds
        bundle = harness.cached_bundle(run.work / "minilm", minilm_path(), ServerData(X, y), ExportConfig(...))
        ...  # the study's own measurements, into run.results
        plot(run.results, run.out / "my-study.png")  # drawn on harness.figure, written by harness.write_png
        run.save(markdown)  # markdown(results) -> str, with harness.heading and harness.table

``run.save`` writes ``results.json`` and ``results.md`` into the results folder (atomically) and prints the
report. Only the standard library is imported at import time: a device-only venv's worker
(runtime/flavour_worker.py) loads this file for :func:`peak_rss_mb`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import resource
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the checkout: workers started with ``-m`` run from here


@dataclasses.dataclass(frozen=True)
class Study:
    """A study's name and where its files go; ``out`` and ``work`` are formatted with ``name``, ``mode`` and the arguments."""

    name: str
    # Modes whose results the docs link, and where they go (e.g. {"quick": "docs/forgetting"}).
    docs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Every other mode's results folder (git ignores benchmarks/results/).
    out: str = "benchmarks/results/{name}-{mode}"
    # Bundles and feature caches, kept between runs: the backbone is most of a study's cost (None: no work folder).
    work: str | None = "benchmarks/results/{name}-{mode}-work"

    def parser(self, doc: str | None, modes: Mapping[str, Any]) -> argparse.ArgumentParser:
        """``--mode`` (one of ``modes``), ``--out`` and, where the modes have seeds, ``--seeds``; a study adds its own flags."""
        parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        default = "quick" if "quick" in modes else next(iter(modes))
        parser.add_argument("--mode", choices=sorted(modes), default=default, help="how much work (default: %(default)s)")
        where = [f"{folder} in {mode} mode" for mode, folder in self.docs.items()]
        default_out = ", else ".join([*where, self.out.replace("{name}", self.name)])
        parser.add_argument("--out", type=Path, default=None, help=f"results folder (default: {default_out})")
        if all(_has_seeds(mode) for mode in modes.values()):
            parser.add_argument("--seeds", type=int, default=None, help="seeds per measurement (default: the mode's)")
        return parser

    def start(self, args: argparse.Namespace, modes: Mapping[str, Any], **fields: Any) -> Run:
        """The run ``args`` ask for: the mode (with ``--seeds``), its folders (created) and the results' header.

        ``fields`` start the results beside the header (e.g. ``data_sets={}``).
        """
        mode = modes[args.mode]
        if getattr(args, "seeds", None) is not None and _has_seeds(mode):
            mode = dataclasses.replace(mode, seeds=args.seeds)
        names = {**vars(args), "name": self.name}
        out = args.out or Path(self.docs.get(args.mode, self.out).format(**names))
        work = None if self.work is None else Path(self.work.format(**{**names, "out": out}))
        for folder in (out, work or out):
            folder.mkdir(parents=True, exist_ok=True)
        quiet()
        return Run(mode, out, work, {**header(args.mode, mode), **fields})


@dataclasses.dataclass
class Run:
    """One run of a study: its mode, its folders and the results it gathers."""

    mode: Any  # the study's mode, with the command line's overrides
    out: Path
    work: Path | None
    results: dict[str, Any]
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def save(self, report: Callable[[dict[str, Any]], str] | None = None) -> None:
        """``results.json`` with the seconds so far and, where given, ``results.md`` (``report`` of the results), printed.

        Called again as a long study goes on, it leaves what was measured so far.
        """
        from edgeft import atomic

        self.results["seconds"] = time.perf_counter() - self.started
        atomic.write_json(self.out / "results.json", self.results)
        if report is not None:
            text = report(self.results)
            atomic.write_bytes(self.out / "results.md", text.encode())
            print(text, flush=True)


def _has_seeds(mode: Any) -> bool:
    return dataclasses.is_dataclass(mode) and "seeds" in {f.name for f in dataclasses.fields(mode)}


def machine() -> str:
    """What the numbers were measured on."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def header(mode: str, config: Any) -> dict[str, Any]:
    """The start of every result: the mode, its settings, the machine and the date."""
    return {
        "mode": mode,
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def heading(results: Mapping[str, Any]) -> str:
    """A report's first line: "Mode `quick` on MACHINE, DATE (N s in all)."."""
    return f"Mode `{results['mode']}` on {results['machine']}, {results['date']} ({results['seconds']:.0f} s in all)."


def quiet() -> None:
    """No warnings about long texts (truncation is the point) or the benchmark's own unsigned bundles."""
    from device_runtime import TruncationWarning
    from edgeft.signing import UnsignedBundleWarning

    warnings.simplefilter("ignore", TruncationWarning)
    warnings.simplefilter("ignore", UnsignedBundleWarning)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB, as the OS counts it.

    Linux's ``ru_maxrss`` survives fork and exec, so a worker started by a
    parent that had loaded torch would report the parent's peak; ``VmHWM`` is
    the high-water mark of this process's own memory map.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def cached_bundle(path: Path, source: Any, data: Any = None, config: Any = None, **options: Any) -> Path:
    """The bundle at ``path``: exported once, and exported again only where the request changed.

    ``source``, ``data``, ``config`` and ``options`` are :func:`export.export_bundle`'s. The request's
    fingerprint and the export's wall time are kept beside the bundle (``PATH.export.json``); a bundle
    whose manifest is there and whose fingerprint matches is reused as it is.
    """
    from edgeft import atomic
    from export import ServerData, export_bundle

    data = data if data is not None else ServerData()
    stamp = path.with_name(path.name + ".export.json")
    request = _fingerprint(source, data, config, options)
    if (path / "manifest.json").is_file() and stamp.is_file() and json.loads(stamp.read_text())["request"] == request:
        return path
    started = time.perf_counter()
    kwargs = {"config": config} if config is not None else {}
    export_bundle(source, path, data=data, overwrite=True, **kwargs, **options)
    atomic.write_json(stamp, {"request": request, "seconds": time.perf_counter() - started})
    return path


def export_seconds(path: Path) -> float | None:
    """How long :func:`cached_bundle`'s export of ``path`` took, or None where it did not export it."""
    stamp = path.with_name(path.name + ".export.json")
    return json.loads(stamp.read_text())["seconds"] if stamp.is_file() else None


def _fingerprint(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        _feed(digest, part)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Hash what an export reads: paths and names, configurations, examples (arrays by their bytes)."""
    if hasattr(value, "tobytes"):  # numpy arrays
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            digest.update(field.name.encode())
            _feed(digest, getattr(value, field.name))
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            digest.update(str(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"[{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, (str, int, float, bool, os.PathLike)) or hasattr(value, "value"):
        digest.update(repr(str(value)).encode())
    else:  # a torch module: the packaged architecture (its weights come with the package)
        digest.update(f"{type(value).__module__}.{type(value).__qualname__}".encode())


def figure(rows: int = 1, cols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """``matplotlib.pyplot.subplots`` drawn off screen (files only): the figure and its axes; ``dpi`` sets the PNG's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, **kwargs)


def write_png(fig: Any, path: Path) -> Path:
    """``fig`` as a PNG at ``path``, at the figure's own dpi (atomically: a reader never sees half a plot), then closed."""
    import matplotlib.pyplot as plt

    from edgeft import atomic

    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi="figure", format="png")
    plt.close(fig)
    return path


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines: the header, its rule and one line per row (cells formatted already)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
