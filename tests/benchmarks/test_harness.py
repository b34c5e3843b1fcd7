"""The benchmarks' harness: a study's command line, its folders, its results, and bundles exported once."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from benchmarks import harness


@dataclasses.dataclass(frozen=True)
class Mode:
    seeds: int
    shots: int = 4


MODES = {"smoke": Mode(seeds=1), "quick": Mode(seeds=3)}


def test_seeds_on_the_command_line_override_the_modes(tmp_path: Path) -> None:
    study = harness.Study("toy", work=str(tmp_path / "work-{mode}"))
    args = study.parser(None, MODES).parse_args(["--seeds", "2", "--out", str(tmp_path / "out")])
    run = study.start(args, MODES)
    assert run.mode == Mode(seeds=2)
    assert run.results["mode"] == "quick" and run.results["config"] == {"seeds": 2, "shots": 4}
    assert run.out.is_dir() and (tmp_path / "work-quick").is_dir()


def test_results_go_where_the_docs_link_that_mode_and_elsewhere_under_benchmarks_results(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    study = harness.Study("toy", docs={"quick": "docs/toy"}, work=None)
    for mode, folder in (("quick", "docs/toy"), ("smoke", "benchmarks/results/toy-smoke")):
        run = study.start(study.parser(None, MODES).parse_args(["--mode", mode]), MODES)
        assert run.out == Path(folder) and run.out.is_dir() and run.work is None


def test_save_writes_the_results_with_their_seconds_and_the_report_made_from_them(tmp_path: Path) -> None:
    study = harness.Study("toy", work=None)
    run = study.start(study.parser(None, MODES).parse_args(["--out", str(tmp_path)]), MODES, data_sets={})
    run.results["data_sets"]["toy"] = {"accuracy": 0.5}
    run.save(lambda r: harness.heading(r) + "\n\n" + "\n".join(harness.table(["data set", "accuracy"], [["toy", 0.5]])))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["data_sets"] == {"toy": {"accuracy": 0.5}} and results["seconds"] >= 0
    report = (tmp_path / "results.md").read_text()
    assert report.startswith("Mode `quick` on ") and report.endswith("| data set | accuracy |\n|---|---|\n| toy | 0.5 |")


def test_a_bundle_is_exported_once_and_again_only_when_its_request_changes(tmp_path: Path, basic_motions) -> None:
    from edgeft.bundle import Bundle
    from edgeft.config import ExportConfig
    from export import FineTuning, ServerData
    from export.adapters.tensor import SCRATCH_FINE_TUNING

    X, labels = basic_motions["server"]
    one_epoch = FineTuning(dataclasses.replace(SCRATCH_FINE_TUNING, epochs=1))
    path = tmp_path / "sensor"

    def export(name: str) -> None:
        config = ExportConfig(name=name, quantization="none")
        harness.cached_bundle(path, "cnn1d", ServerData(X, labels), config, fine_tuning=one_epoch)

    export("first")
    exported = (path / "manifest.json").stat().st_mtime_ns
    export("first")
    assert (path / "manifest.json").stat().st_mtime_ns == exported
    export("second")
    assert Bundle.load(path).manifest.name == "second" and harness.export_seconds(path) > 0


def test_the_harness_loads_by_its_path_with_the_standard_library_alone() -> None:
    # runtime/flavour_worker.py loads it so in a device-only venv, where `benchmarks` does not import.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('h', {str(Path(harness.__file__))!r})\n"
        "h = sys.modules['h'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(h)\n"
        "assert h.peak_rss_mb() > 0\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'edgeft', 'benchmarks', 'matplotlib'}))\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
