"""The frozen backbone: raw input in, one feature vector per example out."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from device_runtime.image import ImageBackbone
from device_runtime.sessions import BackboneSession
from device_runtime.tensor import TensorBackbone
from edgeft.bundle import Bundle
from edgeft.errors import BundleError
from edgeft.layout import TOKENIZER


class TruncationWarning(UserWarning):
    """Some texts were longer than the bundle's max_length and were cut."""


class TextBackbone(BackboneSession):
    """Tokenizer plus the backbone's ONNX inference session (arguments as for :class:`BackboneSession`)."""

    def __init__(self, bundle: Bundle, *args: Any, **kwargs: Any) -> None:
        super().__init__(bundle, *args, **kwargs)
        self.max_length = self.spec.max_length
        self.input_names = self.spec.input_names
        unknown = [name for name in self.input_names if name not in TEXT_INPUTS]
        if unknown:
            raise BundleError(
                f"manifest.json: input.input_names holds {unknown}; a text backbone is fed {', '.join(TEXT_INPUTS)}."
            )
        try:
            self.tokenizer = Tokenizer.from_file(str(bundle.file(TOKENIZER)))
        except Exception as e:  # tokenizers raises a bare Exception for any file it cannot parse
            raise BundleError(
                f"{TOKENIZER} of the bundle at {bundle.path} is not a tokenizer ({e}); re-export the bundle."
            ) from e
        self.tokenizer.enable_truncation(self.spec.max_length)
        # Pad to the longest text of each batch, not to a fixed length: less work. A cut backbone
        # (intermediate_shape) outputs every token's hidden state, so its length is fixed.
        pad = self.tokenizer.padding or {}
        length = self.max_length if bundle.manifest.backbone.intermediate_shape else None
        self.tokenizer.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"), length=length)

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
            batch = self.run(text_feeds(encodings, self.input_names))
            if out is None:
                out = np.empty((len(texts), batch.shape[1]), dtype=np.float32)
            out[idx] = batch
            if progress:
                progress(min(start + batch_size, len(texts)), len(texts))
        if truncated:
            warnings.warn(
                f"{truncated} of {len(texts)} texts were longer than {self.max_length} tokens and were truncated.",
                TruncationWarning,
                stacklevel=3,
            )
        return out

    def batch_feeds(self, texts: list[str], batch_size: int = 32) -> Iterator[dict[str, np.ndarray]]:
        """The backbone's input feeds, one dict per batch (also used for INT8 calibration)."""
        for start in range(0, len(texts), batch_size):
            yield text_feeds(self.tokenizer.encode_batch(texts[start : start + batch_size]), self.input_names)


TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what text_feeds can make


def text_feeds(encodings: list, input_names: list[str]) -> dict[str, np.ndarray]:
    """The graph inputs a transformer backbone asks for, from padded tokenizer encodings."""
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    columns = {
        "input_ids": ids,
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.zeros_like(ids),
    }
    return {name: columns[name] for name in input_names}


# One backbone class per input modality; a new modality registers here.
BACKBONES: dict[str, type] = {"text": TextBackbone, "image": ImageBackbone, "tensor": TensorBackbone}


def backbone_for(
    bundle: Bundle,
    providers: list[str] | None = None,
    threads: int = 0,
    inter_op_threads: int = 0,
    *,
    model_path: str | os.PathLike | None = None,
) -> TextBackbone | ImageBackbone | TensorBackbone:
    """The backbone that reads the bundle's modality.

    Args:
        bundle: a loaded bundle.
        providers, threads, inter_op_threads: as for :class:`BackboneSession`.
        model_path: another backbone file to run instead of the bundle's.

    Raises:
        BundleError: the bundle's modality is not one this runtime reads.
    """
    modality = bundle.manifest.input.modality
    if modality not in BACKBONES:
        raise BundleError(f"The bundle's input modality {modality!r} is not supported; this edgeft reads {', '.join(BACKBONES)}.")
    return BACKBONES[modality](bundle, providers, threads, inter_op_threads, model_path)
