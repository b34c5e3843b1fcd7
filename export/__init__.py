"""edgeft's exporter (workstation side): a pretrained model to a device bundle.

Needs the ``export`` extra (torch, optimum, transformers, onnx); an ONNX
backbone file (:func:`export_onnx_model`) needs no torch.
"""

from export.exporter import export_model, export_onnx_model, export_text_model

__all__ = ["export_model", "export_onnx_model", "export_text_model"]
