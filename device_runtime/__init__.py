"""edgeft's device runtime: personalize a bundle's head on local data.

Imports only edgeft's shared core, numpy, onnxruntime and tokenizers; never
torch, transformers or optimum.
"""

from device_runtime._onnxruntime import import_onnxruntime_without_torch

import_onnxruntime_without_torch()  # before anything imports onnxruntime: see _onnxruntime.py

from device_runtime.backbone import TruncationWarning
from device_runtime.drift import reference_statistics
from device_runtime.engines.base import EngineFallbackWarning
from device_runtime.personalizer import Personalizer
from device_runtime.sessions import ProviderFallbackWarning
from device_runtime.trainer import Progress

__all__ = [
    "EngineFallbackWarning",
    "Personalizer",
    "Progress",
    "ProviderFallbackWarning",
    "TruncationWarning",
    "reference_statistics",
]
