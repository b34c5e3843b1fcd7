"""Any torch module no other adapter claims: exported whole, the head alone trains (no blocks, no device cut)."""

from __future__ import annotations

from export.adapters.torch_vision import TorchVision


class GenericTorch(TorchVision):
    """A ``torch.nn.Module`` of an architecture edgeft knows nothing of; last in the registry."""

    name = "torch-module"
    kind = "other torch modules (head only)"
