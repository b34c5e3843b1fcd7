"""edgeft's exporter (workstation side): a pretrained model to a device bundle.

Needs the ``export`` extra (torch, optimum, transformers, onnx).
"""

from export.exporter import export_text_model

__all__ = ["export_text_model"]
