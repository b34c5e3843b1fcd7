"""The backbone's ONNX Runtime inference session: execution providers and threads, in one place."""

from __future__ import annotations

import os
import warnings

import onnxruntime as ort

from edgeft.errors import ConfigError


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
            raise ConfigError(f"Unknown execution provider {name!r}; expected one of {', '.join(PROVIDERS)} or an ORT provider name.")
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


class BackboneSession:
    """An inference session over a backbone file, on the first available provider asked for.

    Args:
        path: the backbone's ONNX file.
        providers: execution providers in order of preference (short names
            such as "cuda" or ORT names); missing ones fall back with a warning.
        threads: intra-op threads (0 lets ORT choose).
        inter_op_threads: threads across operators (0 lets ORT choose).
    """

    def __init__(
        self, path: str | os.PathLike, providers: list[str] | None = None, threads: int = 0, inter_op_threads: int = 0
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = inter_op_threads
        self.session = ort.InferenceSession(str(path), options, providers=resolve_providers(providers))

    @property
    def provider(self) -> str:
        """The execution provider that runs the backbone (the first one the session took)."""
        return self.session.get_providers()[0]
