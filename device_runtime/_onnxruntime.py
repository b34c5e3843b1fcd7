"""Import onnxruntime without the torch that its training build pulls in.

``import onnxruntime`` (onnxruntime-training builds) runs
``capi/onnxruntime_validation.py``, which tries ``onnxruntime.training.ortmodule``
and through it imports torch wherever torch is installed: 1.4 s and about
100 MB of a device's memory for nothing the device uses. An ImportError there
is expected and swallowed by ORT, so during that one import we make
``ortmodule`` unimportable, and register ``onnxruntime.training`` as a bare
package (its real ``__init__`` imports torch too; see ``ort_training.py``).
Where torch is absent this changes nothing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path

ORTMODULE = "onnxruntime.training.ortmodule"
TRAINING_DISTRIBUTIONS = ("onnxruntime-training-cpu", "onnxruntime-training")


def distributions() -> list[tuple[str, str]]:
    """(name, version) of each installed distribution that provides the ``onnxruntime`` package.

    One is normal. Two mean one overwrote the other's files (onnxruntime and
    onnxruntime-training-cpu install the same package), which nobody should trust.
    """
    names = sorted(set(importlib.metadata.packages_distributions().get("onnxruntime", [])))
    return [(name, importlib.metadata.version(name)) for name in names]


def describe() -> str:
    """The installed ONNX Runtime in words, e.g. "onnxruntime 1.32.0" or "onnxruntime-training-cpu 1.19.2"."""
    found = distributions()
    return " and ".join(f"{name} {version}" for name, version in found) if found else "no ONNX Runtime distribution"


def register_bare_training_package() -> None:
    """Make ``onnxruntime.training`` a package object without running its ``__init__``."""
    if "onnxruntime.training" in sys.modules:
        return
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType("onnxruntime.training")
    package.__path__ = [str(Path(spec.submodule_search_locations[0]) / "training")]
    sys.modules["onnxruntime.training"] = package


def import_onnxruntime_without_torch() -> None:
    """Import onnxruntime now, keeping its validation step from importing torch."""
    if "onnxruntime" in sys.modules:
        return
    register_bare_training_package()
    blocked = ORTMODULE not in sys.modules
    if blocked:
        sys.modules[ORTMODULE] = None  # "import of ... halted": an ImportError, which ORT expects
    try:
        import onnxruntime  # noqa: F401
    finally:
        if blocked and sys.modules.get(ORTMODULE, 0) is None:
            del sys.modules[ORTMODULE]
