"""A plain CNN written as ``nn.Sequential``: conv stages, then pooling and a flatten.

For example ``nn.Sequential(stage, stage, stage, nn.AdaptiveAvgPool2d(1), nn.Flatten())``, each stage a
module holding a ``Conv2d`` (``nn.Sequential(nn.Conv2d(...), nn.BatchNorm2d(...), nn.ReLU())``). A block is
one stage; there is no stem, and the top (pooling and flatten) has no weights. The device cut goes between
two stages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from export.adapters.torch_vision import TorchVision

if TYPE_CHECKING:
    from export.finetune import Blocks
    from export.fused import DeviceCut


class SequentialCNN(TorchVision):
    """An ``nn.Sequential`` of conv stages ending in pooling and ``nn.Flatten``."""

    name = "sequential-cnn"
    kind = "sequential CNNs (nn.Sequential of conv stages, then pooling and flatten)"
    fine_tunes = True
    cuts = True

    @classmethod
    def matches(cls, source: Any) -> bool:
        if not super().matches(source):
            return False
        from torch import nn

        if not isinstance(source, nn.Sequential):
            return False
        stages, top = _split(source)
        has_conv = [any(isinstance(m, nn.Conv2d) for m in stage.modules()) for stage in stages]
        return len(stages) >= 2 and all(has_conv) and bool(top) and isinstance(top[-1], nn.Flatten)

    def blocks(self, module: Any) -> Blocks:
        from export.finetune import Blocks

        stages, top = _split(module)
        return Blocks(stem=[], blocks=stages, top=top)

    def block_count(self) -> int:
        return len(_split(self.source)[0])

    def device_cut(self, n: int) -> DeviceCut:
        return stage_cut(*_split(self.source), n)


def stage_cut(stages: list[Any], top: list[Any], n: int) -> DeviceCut:
    """A net of ``stages`` then ``top`` (weightless pooling and flatten) cut before its last ``n`` stages."""
    from export.fused import DeviceCut

    frozen, tail = _cut_modules()
    return DeviceCut(frozen(stages[: len(stages) - n]), tail(stages, top, len(stages) - n), n)


def _split(module: Any) -> tuple[list[Any], list[Any]]:
    """The conv stages, and the top: the pooling and flatten children after the last stage."""
    from torch import nn

    children = list(module.children())
    end = len(children)
    while end and isinstance(children[end - 1], (nn.Flatten, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        end -= 1
    return children[:end], children[end:]


def _cut_modules() -> tuple[type, type]:
    """The two parts' classes, defined on first use: they subclass torch modules, and torch loads lazily."""
    import torch

    from export.fused import CutFrozen, CutTail

    class Frozen(CutFrozen):
        """The stages below the tail."""

        def __init__(self, stages: list[torch.nn.Module]) -> None:
            super().__init__()
            self.stages = torch.nn.Sequential(*stages)

        def activation(self, x: torch.Tensor) -> torch.Tensor:
            return self.stages(x)

    class Tail(CutTail):
        """The last stages, keyed by their index in the whole net, then the pooling and flatten."""

        def __init__(self, stages: list[torch.nn.Module], top: list[torch.nn.Module], first: int) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleDict({str(i): stages[i] for i in range(first, len(stages))})
            self.top = torch.nn.Sequential(*top)

        def pooled(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks.values():
                x = block(x)
            return self.top(x)

    return Frozen, Tail
