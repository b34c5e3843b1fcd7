"""One registered adapter per kind of backbone, asked in order; the generic torch module comes last.

Adding an architecture is one file here: a subclass of :class:`~export.adapters.base.Adapter` (a torch
vision one of :class:`~export.adapters.torch_vision.TorchVision`), listed in :data:`ADAPTERS` before the
generic one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgeft.errors import ExportError
from export.adapters.base import Adapter, BackboneOptions, ExportedBackbone
from export.adapters.efficientnet import EfficientNetLite
from export.adapters.generic import GenericTorch
from export.adapters.onnx_file import OnnxFile
from export.adapters.sequential import SequentialCNN
from export.adapters.tensor import Tensor
from export.adapters.text import TransformerText
from export.vision import VISION_MODELS

# The first adapter whose matches() claims a source exports it.
# Tensor claims only "cnn1d" by itself; a torch module or an ONNX file reads tensors when BackboneOptions.tensor is set.
ADAPTERS: list[type[Adapter]] = [TransformerText, Tensor, OnnxFile, EfficientNetLite, SequentialCNN, GenericTorch]


def adapter_for(source: Any, options: BackboneOptions = BackboneOptions()) -> Adapter:
    """The adapter for ``source``: the one ``options.adapter`` names, else the first in :data:`ADAPTERS` that claims it.

    Args:
        source: a text model folder, an ``.onnx`` path, a torch module, a packaged model's name
            (``export.vision.VISION_MODELS``, built here), or ``"cnn1d"`` (edgeft's small tensor backbone, trained at
            export); an adapter already bound to a source is returned as is.
        options: how to read the source where it does not say (an adapter given as ``source`` has its own);
            ``options.tensor`` set makes a torch module or an ONNX file a float-tensor backbone.

    Raises:
        ExportError: no adapter has the name given, or none claims the source.
    """
    if isinstance(source, Adapter):
        return source
    packaged = VISION_MODELS.get(source) if isinstance(source, str) else None
    if packaged is not None:
        source = packaged.build()
    if options.adapter is None and options.tensor is not None:
        options = dataclasses.replace(options, adapter=Tensor.name)
    if options.adapter is not None:
        by_name = {a.name: a for a in ADAPTERS}
        if options.adapter not in by_name:
            raise ExportError(f"Unknown adapter {options.adapter!r}; the adapters are {sorted(by_name)}.")
        return by_name[options.adapter](source, options, packaged)
    for adapter in ADAPTERS:
        if adapter.matches(source):
            return adapter(source, options, packaged)
    raise ExportError(
        f"No adapter exports {source!r}: give a Hugging Face model folder, an .onnx file, a torch module, "
        f"a packaged model's name ({', '.join(VISION_MODELS)}), or cnn1d for float tensors."
    )


__all__ = ["ADAPTERS", "Adapter", "BackboneOptions", "ExportedBackbone", "adapter_for"]
