"""What edgeft's device install resolves to on platforms this machine cannot run: `make wheels`.

For each target: edgeft's base requirements (read from its wheel's metadata)
whose environment markers hold there, resolved by ``pip install --dry-run
--only-binary=:all:`` with that platform's tags and Python version; then one
table row: the ONNX Runtime it gets, which engine trains there, and how many
packages resolved, all of them binary wheels. pip evaluates markers against
the interpreter running it, not the ``--platform`` given, so edgeft's own
markers (the ONNX Runtime choice) are evaluated here for each target; those of
dependencies further down are pip's (this machine's), which can leave out a
small OS-specific pure-Python package (colorama on Windows, say).

Usage: python tools/wheel_resolution.py [--wheel dist/edgeft-*.whl] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import email.parser
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORT_DISTRIBUTIONS = {"onnxruntime-training-cpu": "ort", "onnxruntime": "numpy"}


def _manylinux(arch: str) -> tuple[str, ...]:
    """Every manylinux tag a glibc 2.36 system (Debian 12, Raspberry Pi OS bookworm, Ubuntu 22.04+) accepts."""
    return (*(f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)), f"manylinux2014_{arch}")


@dataclass(frozen=True)
class Target:
    """One device: a name, the wheel platform tags it accepts, a CPython version and its marker values."""

    name: str
    platforms: tuple[str, ...]
    python: str
    sys_platform: str
    machine: str

    def markers(self) -> dict[str, str]:
        """The PEP 508 environment of this target, for evaluating requirement markers."""
        system = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[self.sys_platform]
        return {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "sys_platform": self.sys_platform,
            "platform_machine": self.machine,
            "platform_system": system,
            "os_name": "nt" if system == "Windows" else "posix",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "extra": "",
        }


DEVICES = (
    ("Linux x86-64", _manylinux("x86_64"), "linux", "x86_64"),
    ("Linux aarch64", _manylinux("aarch64"), "linux", "aarch64"),
    ("macOS arm64", ("macosx_14_0_arm64",), "darwin", "arm64"),
    ("Windows x86-64", ("win_amd64",), "win32", "AMD64"),
)
TARGETS = tuple(
    Target(f"{name}, CPython {python}", platforms, python, sys_platform, machine)
    for name, platforms, sys_platform, machine in DEVICES
    for python in ("3.11", "3.13", "3.14")
)


def base_requirements(wheel: Path, target: Target) -> list[str]:
    """edgeft's base requirements that apply on ``target``, markers removed."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    applying = []
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(target.markers()):
            requirement.marker = None
            applying.append(str(requirement))
    return applying


def resolve(target: Target, wheel: Path) -> dict:
    """pip's install report for edgeft's base install on ``target`` (metadata only: nothing is installed)."""
    with tempfile.TemporaryDirectory() as target_dir, tempfile.TemporaryDirectory() as report_dir:
        report = Path(report_dir) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--only-binary=:all:",
            "--python-version",
            target.python,
            "--implementation",
            "cp",
            "--target",
            target_dir,
            *(f"--platform={tag}" for tag in target.platforms),
            "--report",
            str(report),
            *base_requirements(wheel, target),
        ]
        result = subprocess.run(command, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "pip failed"}
        return json.loads(report.read_text())


def row(target: Target, report: dict) -> dict:
    """One table row: what resolved for ``target``."""
    if "error" in report:
        return {
            "target": target.name,
            "onnxruntime": "-",
            "engine": "-",
            "packages": 0,
            "wheels": False,
            "detail": report["error"],
        }
    installs = report["install"]
    names = {item["metadata"]["name"].lower(): item for item in installs}
    ort = [name for name in ORT_DISTRIBUTIONS if name in names]
    wheels = [item["download_info"]["url"].rsplit("/", 1)[-1] for item in installs]
    ort_wheel = names[ort[0]]["download_info"]["url"].rsplit("/", 1)[-1] if len(ort) == 1 else "-"
    return {
        "target": target.name,
        "onnxruntime": " + ".join(f"{n} {names[n]['metadata']['version']}" for n in ort) or "none",
        "engine": ORT_DISTRIBUTIONS[ort[0]] if len(ort) == 1 else "-",
        "packages": len(installs),
        "wheels": len(ort) == 1 and all(w.endswith(".whl") for w in wheels),
        "detail": ort_wheel,
    }


def build_wheel(out: Path) -> Path:
    """edgeft's wheel from this checkout."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)], check=True)
    return next(out.glob("edgeft-*.whl"))


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| target | ONNX Runtime | engine | packages | all binary wheels | ONNX Runtime wheel / error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['target']} | {r['onnxruntime']} | {r['engine']} | {r['packages']} | {'yes' if r['wheels'] else 'NO'} | "
        f"{r['detail']} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="edgeft wheel to resolve (default: build one from this checkout)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        wheel = args.wheel or build_wheel(Path(work))
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:  # each pip waits mostly on PyPI
            reports = list(pool.map(lambda target: resolve(target, wheel), TARGETS))
        rows = [row(target, report) for target, report in zip(TARGETS, reports)]
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0 if all(r["wheels"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
