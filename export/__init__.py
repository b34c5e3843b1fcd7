"""edgeft's exporter (workstation side): a pretrained model to a device bundle.

:func:`export_bundle` exports any source that an adapter (``export.adapters``) claims. Needs the
``export`` extra (torch, optimum, transformers, onnx); an ONNX backbone file needs no torch.
"""

from export.adapters import ADAPTERS, BackboneOptions, adapter_for
from export.exporter import export_bundle
from export.request import FineTuning, ServerData
from export.wrappers import export_model, export_onnx_model, export_text_model

__all__ = [
    "ADAPTERS",
    "BackboneOptions",
    "FineTuning",
    "ServerData",
    "adapter_for",
    "export_bundle",
    "export_model",
    "export_onnx_model",
    "export_text_model",
]
