"""The frozen backbone: raw input in, one feature vector per example out."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from edgeft.bundle import BACKBONE, TOKENIZER, Bundle
from edgeft.errors import ConfigError


class TruncationWarning(UserWarning):
    """Some texts were longer than the bundle's max_length and were cut."""


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
                stacklevel=3,
            )
    return [*[p for p in chosen if p != PROVIDERS["cpu"]], PROVIDERS["cpu"]]


class TextBackbone:
    """Tokenizer plus the backbone's ONNX inference session.

    Args:
        bundle: a loaded bundle of text modality.
        providers: execution providers in order of preference (short names
            such as "cuda" or ORT names); missing ones fall back with a warning.
        threads: intra-op threads (0 lets ORT choose).
        inter_op_threads: threads across operators (0 lets ORT choose).
    """

    def __init__(
        self, bundle: Bundle, providers: list[str] | None = None, threads: int = 0, inter_op_threads: int = 0
    ) -> None:
        spec = bundle.manifest.input
        self.max_length = spec.max_length
        self.input_names = spec.input_names
        self.output_name = bundle.manifest.backbone.output_name
        self.tokenizer = Tokenizer.from_file(str(bundle.file(TOKENIZER)))
        self.tokenizer.enable_truncation(spec.max_length)
        # Pad to the longest text of each batch, not to a fixed length: less work.
        pad = self.tokenizer.padding or {}
        self.tokenizer.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = inter_op_threads
        self.session = ort.InferenceSession(str(bundle.file(BACKBONE)), options, providers=resolve_providers(providers))

    @property
    def provider(self) -> str:
        """The execution provider that runs the backbone (the first one the session took)."""
        return self.session.get_providers()[0]

    def features(
        self,
        texts: list[str],
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Feature vectors, shape (len(texts), feature_size), float32.

        Texts are batched by length so that little time goes into padding.
        """
        order = np.argsort([len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        truncated = 0
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in idx])
            truncated += sum(1 for e in encodings if e.overflowing)
            batch = self.session.run([self.output_name], text_feeds(encodings, self.input_names))[0]
            if out is None:
                out = np.empty((len(texts), batch.shape[1]), dtype=np.float32)
            out[idx] = batch
            if progress:
                progress(min(start + batch_size, len(texts)), len(texts))
        if truncated:
            warnings.warn(
                f"{truncated} of {len(texts)} texts were longer than {self.max_length} tokens "
                "and were truncated.",
                TruncationWarning,
                stacklevel=3,
            )
        return out


def text_feeds(encodings: list, input_names: list[str]) -> dict[str, np.ndarray]:
    """The graph inputs a transformer backbone asks for, from padded tokenizer encodings."""
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    columns = {
        "input_ids": ids,
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.zeros_like(ids),
    }
    return {name: columns[name] for name in input_names}
