"""The older per-kind entry points, each one call of :func:`export.exporter.export_bundle`.

Kept so that scripts written against them run on; new code calls ``export_bundle``. Their remaining
keyword arguments (``config``, ``train_config``, ``fine_tuning``, ``overwrite``, ``progress``) are
``export_bundle``'s.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgeft.config import ImagePreprocessing, Pooling
from edgeft.manifest import Manifest
from export.adapters import BackboneOptions
from export.exporter import export_bundle
from export.request import ServerData


def export_text_model(
    model_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    texts: list[str] | None = None,
    labels: list[str] | None = None,
    label_set: list[str] | None = None,
    **options: Any,
) -> Manifest:
    """A Hugging Face / sentence-transformers folder to a bundle: ``export_bundle`` with the text adapter."""
    return export_bundle(
        model_dir,
        output,
        data=ServerData(texts, labels, label_set),
        backbone=BackboneOptions(adapter="transformer-text"),
        **options,
    )


def export_model(
    module: object,
    example_input: object,
    output: str | os.PathLike,
    *,
    images: np.ndarray | None = None,
    labels: list[str] | None = None,
    label_set: list[str] | None = None,
    preprocessing: ImagePreprocessing = ImagePreprocessing(),
    **options: Any,
) -> Manifest:
    """A torch vision module to a bundle: ``export_bundle`` with the adapter that claims the module."""
    backbone = BackboneOptions(example_input=example_input, preprocessing=preprocessing)
    return export_bundle(module, output, data=ServerData(images, labels, label_set), backbone=backbone, **options)


def export_onnx_model(
    onnx_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    feature_output: str,
    pooling: Pooling | str = Pooling.NONE,
    tokenizer: str | os.PathLike | None = None,
    preprocessing: ImagePreprocessing = ImagePreprocessing(),
    X: list[str] | np.ndarray | None = None,
    labels: list[str] | None = None,
    label_set: list[str] | None = None,
    **options: Any,
) -> Manifest:
    """An ONNX backbone file to a bundle (no torch needed): ``export_bundle`` with the ONNX-file adapter."""
    backbone = BackboneOptions(
        adapter="onnx-file", feature_output=feature_output, pooling=pooling, tokenizer=tokenizer, preprocessing=preprocessing
    )
    return export_bundle(onnx_path, output, data=ServerData(X, labels, label_set), backbone=backbone, **options)
