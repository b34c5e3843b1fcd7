"""The backbone's ONNX Runtime inference session: execution providers and threads, in one place."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import onnxruntime as ort

from edgeft.bundle import Bundle
from edgeft.errors import BundleError, ConfigError
from edgeft.layout import BACKBONE


class ProviderFallbackWarning(UserWarning):
    """An execution provider asked for is not in this ONNX Runtime build; the next one is used."""


# Short names for ONNX Runtime's execution providers.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "qnn": "QNNExecutionProvider",
}


def resolve_providers(requested: list[str] | tuple[str, ...] | None) -> list[str]:
    """The requested providers that this ORT build has, in order, with CPU last.

    Each missing one is skipped with a :class:`ProviderFallbackWarning`.

    Raises:
        ConfigError: a name is neither a short name nor an ORT provider name.
    """
    available = ort.get_available_providers()
    chosen = []
    for name in requested or ["cpu"]:
        full = PROVIDERS.get(name.lower(), name)
        if full not in PROVIDERS.values() and full not in available:
            raise ConfigError(
                f"Unknown execution provider {name!r}; expected one of {', '.join(PROVIDERS)} or an ORT provider name."
            )
        if full in available:
            chosen.append(full)
        else:
            warnings.warn(
                f"Execution provider {full} is not in this onnxruntime build (it has {', '.join(available)}); "
                "falling back to the next one.",
                ProviderFallbackWarning,
                stacklevel=4,
            )
    return [*[p for p in chosen if p != PROVIDERS["cpu"]], PROVIDERS["cpu"]]


@contextlib.contextmanager
def ort_failures(what: str) -> Iterator[None]:
    """ONNX Runtime's own errors inside the block (a graph it cannot load, an input its graph cannot take) as a
    :class:`BundleError` saying what failed: a bundle whose files or manifest do not fit together, never a raw error.
    """
    try:
        yield
    except Exception as e:  # ORT's error classes derive from Exception alone; only theirs are translated
        if not type(e).__module__.startswith("onnxruntime"):
            raise
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise BundleError(
            f"ONNX Runtime could not {what} ({reason}). The bundle's files and manifest do not fit together "
            "(altered, damaged, or a manifest bound it does not meet): re-export or re-download the bundle."
        ) from e


def session_options(threads: int = 0, inter_op_threads: int = 0) -> ort.SessionOptions:
    """ORT session options with the runtime's thread counts (0 lets ORT choose), for every session edgeft opens."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = inter_op_threads
    options.log_severity_level = 4  # fatal only: ORT's errors reach the caller as typed errors (ort_failures), not log lines
    return options


class BackboneSession:
    """A bundle's backbone as an inference session, on the first available provider asked for.

    Args:
        bundle: a loaded bundle; its manifest gives the input spec and the feature output.
        providers: execution providers in order of preference (short names
            such as "cuda" or ORT names); missing ones fall back with a warning.
        threads: intra-op threads (0 lets ORT choose).
        inter_op_threads: threads across operators (0 lets ORT choose).
        model_path: another backbone file to run instead of the bundle's
            (the exporter compares FP32 and INT8 this way).
    """

    def __init__(
        self,
        bundle: Bundle,
        providers: list[str] | None = None,
        threads: int = 0,
        inter_op_threads: int = 0,
        model_path: str | os.PathLike | None = None,
    ) -> None:
        path = model_path or bundle.file(BACKBONE)
        options = session_options(threads, inter_op_threads)
        with ort_failures(f"load the backbone {path}"):
            self.session = ort.InferenceSession(str(path), options, providers=resolve_providers(providers))
        self.spec = bundle.manifest.input
        self.output_name = bundle.manifest.backbone.output_name
        _check_graph_names(self.session, self.spec.input_names, self.output_name)

    def run(self, feeds: dict[str, object]) -> object:
        """The backbone's feature output for ``feeds``; ORT's failures as a :class:`BundleError`."""
        shapes = ", ".join(f"{name} {list(getattr(value, 'shape', ()))}" for name, value in feeds.items())
        with ort_failures(f"run the backbone on a batch of {shapes}"):
            return self.session.run([self.output_name], feeds)[0]

    @property
    def provider(self) -> str:
        """The execution provider that runs the backbone (the first one the session took)."""
        return self.session.get_providers()[0]


def _check_graph_names(session: ort.InferenceSession, input_names: list[str], output_name: str) -> None:
    """The manifest's input and output names are the backbone graph's: else ORT fails later, far from the cause."""
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if sorted(input_names) != sorted(inputs):
        raise BundleError(
            f"manifest.json: input.input_names is {input_names}, but the backbone graph's inputs are {inputs}; "
            "the manifest does not describe this backbone. Re-export the bundle."
        )
    if output_name not in outputs:
        raise BundleError(
            f"manifest.json: backbone.output_name is {output_name!r}, but the backbone graph's outputs are "
            f"{outputs}; the manifest does not describe this backbone. Re-export the bundle."
        )
