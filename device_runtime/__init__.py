"""edgeft's device runtime: personalize a bundle's head on local data.

Imports only edgeft's shared core, numpy, onnxruntime and tokenizers; never
torch, transformers or optimum.
"""

from device_runtime.backbone import TruncationWarning
from device_runtime.personalizer import Personalizer
from device_runtime.trainer import Progress

__all__ = ["Personalizer", "Progress", "TruncationWarning"]
