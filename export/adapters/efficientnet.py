"""EfficientNet-Lite (``efficientnet_lite_pytorch``), as ``export.vision``'s pooled-features wrapper builds it.

Everything edgeft knows of its internals is here: a block is one of ``net._blocks`` (16 MBConv blocks in
Lite0); the stem is ``_conv_stem`` and ``_bn0``; the top is ``_conv_head`` and ``_bn1``, then mean pooling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeft.config import ImagePreprocessing
from export.adapters.torch_vision import TorchVision

if TYPE_CHECKING:
    from export.finetune import Blocks
    from export.fused import DeviceCut


class EfficientNetLite(TorchVision):
    """A module whose ``net`` is an ``efficientnet_lite_pytorch.EfficientNet`` (its blocks in ``net._blocks``)."""

    name = "efficientnet-lite"
    kind = "EfficientNet-Lite (efficientnet-lite0)"
    fine_tunes = True
    cuts = True

    @classmethod
    def matches(cls, source: Any) -> bool:
        if not super().matches(source):
            return False
        from torch import nn

        return isinstance(getattr(getattr(source, "net", None), "_blocks", None), nn.ModuleList)

    def default_preprocessing(self) -> ImagePreprocessing:
        from export.vision import VISION_MODELS  # the packaged model's entry holds its training recipe

        return VISION_MODELS["efficientnet-lite0"].preprocessing

    def blocks(self, module: Any) -> Blocks:
        from export.finetune import Blocks

        net = module.net
        return Blocks(stem=[net._conv_stem, net._bn0], blocks=list(net._blocks), top=[net._conv_head, net._bn1])

    def block_count(self) -> int:
        return len(self.source.net._blocks)

    def device_cut(self, n: int) -> DeviceCut:
        from export.fused import DeviceCut

        frozen, tail = _cut_modules()
        return DeviceCut(frozen(self.source.net, n), tail(self.source.net, n), n)


def pooled_features(net: Any) -> Any:
    """``net`` (an ``efficientnet_lite_pytorch.EfficientNet``) wrapped as the backbone the bundle ships, in eval mode."""
    import torch

    class PooledFeatures(torch.nn.Module):
        """EfficientNet-Lite's 1280 channels after the last conv, averaged over space."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.extract_features(x).mean((2, 3))

    return PooledFeatures(net).eval()


def _cut_modules() -> tuple[type, type]:
    """The two parts' classes, defined on first use: they subclass torch modules, and torch loads lazily."""
    import torch

    from export.fused import CutFrozen, CutTail

    class Frozen(CutFrozen):
        """The stem and the blocks below the tail."""

        def __init__(self, net: torch.nn.Module, n_tail: int) -> None:
            super().__init__()
            self.net, self.n_tail = net, n_tail

        def activation(self, x: torch.Tensor) -> torch.Tensor:
            net = self.net
            x = net._swish(net._bn0(net._conv_stem(x)))
            for block in list(net._blocks)[: len(net._blocks) - self.n_tail]:
                x = block(x)  # no drop-connect rate: it is a no-op in eval mode
            return x

    class Tail(CutTail):
        """The last blocks, the top (conv head, BatchNorm, swish) and mean pooling."""

        def __init__(self, net: torch.nn.Module, n_tail: int) -> None:
            super().__init__()
            first = len(net._blocks) - n_tail
            # Keyed by the block's index in the whole backbone, so ONNX names say which block a weight is.
            self.blocks = torch.nn.ModuleDict({str(i): net._blocks[i] for i in range(first, len(net._blocks))})
            self.conv_head, self.bn1, self.act = net._conv_head, net._bn1, net._swish

        def pooled(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks.values():
                x = block(x)
            return self.act(self.bn1(self.conv_head(x))).mean((2, 3))

    return Frozen, Tail
