"""What this installation is made of, for a bug report: ``edgeft doctor``.

Everything here is read from the running interpreter and the installed
distributions' metadata; nothing heavy (torch, FastAPI) is imported to find
out whether it is there.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import sys
from dataclasses import asdict, dataclass

from device_runtime import _onnxruntime
from edgeft import __version__

_EXTRA = re.compile(r"""extra\s*==\s*["']([\w-]+)["']""")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Diagnosis:
    """The facts ``edgeft doctor`` prints.

    Attributes:
        edgeft: edgeft's version.
        python: the interpreter's version, implementation and path.
        platform: OS, machine and C library, as ``platform.platform()`` says.
        onnxruntime: the distribution(s) providing the ``onnxruntime`` package, with versions.
        providers: ONNX Runtime's available execution providers.
        engine: the engine ``engine="auto"`` trains with here ("ort", or "step" for bundles with step graphs).
        engine_reason: why not ORT, where it is not; empty otherwise.
        extras: for each optional extra of edgeft, the requirements it lacks (empty: all present).
    """

    edgeft: str
    python: str
    platform: str
    onnxruntime: str
    providers: tuple[str, ...]
    engine: str
    engine_reason: str
    extras: dict[str, tuple[str, ...]]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The plain-text report, one fact per line."""
        rows = [
            ("edgeft", self.edgeft),
            ("python", self.python),
            ("platform", self.platform),
            ("onnxruntime", self.onnxruntime),
            ("providers", ", ".join(self.providers)),
            ("training engine", f"{self.engine}: {self.engine_reason or 'ONNX Runtime training'}"),
            *(
                (f"extra [{name}]", f"missing {', '.join(lacks)}" if lacks else "installed")
                for name, lacks in self.extras.items()
            ),
        ]
        if self.engine_reason and "export" in self.extras:
            rows.append(
                ("exporting", "needs ONNX Runtime training, so Python 3.10-3.12 on x86-64 Linux, macOS or x86-64 Windows")
            )
        width = max(len(key) for key, _ in rows)
        return [f"{key:<{width}}  {value}" for key, value in rows]


def diagnose() -> Diagnosis:
    """Look at this installation (imports onnxruntime; tries ORT's training API once)."""
    import onnxruntime

    from device_runtime.ort_training import training_available

    problem = training_available()
    return Diagnosis(
        edgeft=__version__,
        python=f"{platform.python_version()} ({platform.python_implementation()}) at {sys.executable}",
        platform=f"{platform.platform()} ({sys.platform}, {platform.machine()})",
        onnxruntime=_onnxruntime.describe(),
        providers=tuple(onnxruntime.get_available_providers()),
        engine="ort" if problem is None else "step",
        engine_reason="" if problem is None else f"{problem}; numpy for bundles exported without step graphs",
        extras=extras_status(),
    )


def extras_status() -> dict[str, tuple[str, ...]]:
    """For each extra edgeft declares, the names of its requirements that are not installed here.

    Extras whose requirements apply nowhere on this interpreter (markers) still appear; an edgeft run
    from a source tree without being installed has no metadata, and then no extras are listed.
    """
    try:
        requirements = importlib.metadata.requires("edgeft") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    lacking: dict[str, list[str]] = {}
    for requirement in requirements:
        extra = _EXTRA.search(requirement)
        if extra is None:
            continue
        missing = lacking.setdefault(extra.group(1), [])
        name = _NAME.match(requirement).group(0)  # type: ignore[union-attr] (every requirement starts with its name)
        if not _installed(name):
            missing.append(name)
    return {extra: tuple(names) for extra, names in lacking.items()}


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
