"""EfficientNet-Lite0 + Fashion-MNIST: the exporter's image bundle against textbook ORT and PyTorch on the device.

prepare_vision exports the packaged EfficientNet-Lite0 with ``export.export_bundle``
(an FP32 backbone: on x86 CPUs its INT8 conv graph runs slower than FP32, and the
exporter's guard refuses what loses accuracy) and an untrained head, as
the text bundles are. Every alternative sees the same pixels: the bundle's
own numpy preprocessing (``device_runtime.image.preprocess``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.speed.config import TEXTBOOK
from benchmarks.speed.per_step import train_per_step

VISION = "vision"  # cache sub-folder: bundle/ and data.npz
BUNDLE = "bundle"


def prepare_vision(cache: Path, pool_per_class: int, test_per_class: int, seed: int) -> None:
    """Fashion-MNIST splits, EfficientNet-Lite0's bundle (FP32 backbone, zero head) and its textbook ORT artifacts."""

    from benchmarks import harness
    from benchmarks.speed.prepare import write_textbook_artifacts
    from edgeft.config import ExportConfig, Quantization
    from example_data import FASHION_MNIST_CLASSES, fashion_mnist
    from export import ServerData
    from export.vision import VISION_MODELS

    folder = cache / VISION
    folder.mkdir(parents=True, exist_ok=True)
    pool_x, pool_y = fashion_mnist("train", pool_per_class, seed=seed)
    test_x, test_y = fashion_mnist("test", test_per_class, seed=seed)
    np.savez(folder / "data.npz", pool_x=pool_x, pool_y=pool_y, test_x=test_x, test_y=test_y)
    model = VISION_MODELS["efficientnet-lite0"]
    config = ExportConfig(name="effnet-fashion", quantization=Quantization.NONE, license=model.license)
    harness.cached_bundle(folder / BUNDLE, model.build(), ServerData(label_set=FASHION_MNIST_CLASSES), config)
    if not (folder / TEXTBOOK / "checkpoint").is_file():
        write_textbook_artifacts(folder / BUNDLE, folder / TEXTBOOK, len(FASHION_MNIST_CLASSES))


class _Vision:
    """Data, labels and the bundle's preprocessing, shared by the vision alternatives."""

    def __init__(self, cache: Path, batch_size: int, lr: float) -> None:
        from edgeft.bundle import Bundle
        from edgeft.config import TrainConfig

        self.folder, self.batch_size = cache / VISION, batch_size
        self.config = TrainConfig(lr=lr, batch_size=batch_size)
        self.bundle = Bundle.load(self.folder / BUNDLE)
        self.classes = self.bundle.manifest.labels

    def load_data(self) -> dict:
        data = np.load(self.folder / "data.npz")
        return {
            "pool": [list(data["pool_x"]), [str(y) for y in data["pool_y"]]],
            "test": [list(data["test_x"]), [str(y) for y in data["test_y"]]],
        }

    def pixels(self, images: list[np.ndarray]) -> np.ndarray:
        """What the bundle's backbone reads: (n, 3, 224, 224) float32."""
        from device_runtime.image import preprocess
        from device_runtime.validation import check_images

        return preprocess(check_images(np.stack(images)), self.bundle.manifest.input)

    def targets(self, labels: list[str]) -> np.ndarray:
        return np.array([self.classes.index(label) for label in labels], dtype=np.int64)

    def accuracy(self, images: list[np.ndarray], labels: list[str]) -> float:
        predicted = np.concatenate(
            [self.predict(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)]
        )
        return float((predicted == self.targets(labels)).mean())


class VisionEdgeft(_Vision):
    """The device runtime on the image bundle: backbone once per image, the head over its features."""

    def load(self) -> None:
        from device_runtime import Personalizer

        self.personalizer = Personalizer(self.bundle)

    def fit(self, images: list[np.ndarray], labels: list[str], epochs: int) -> None:
        from device_runtime import Personalizer

        # A fresh personalizer per run: an empty feature cache, so every run pays for its backbone pass.
        self.personalizer = Personalizer(self.bundle)
        self.personalizer.fit(
            np.stack(images),
            labels,
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.config.lr,
            validation_fraction=0.0,
            accept="always",
        )

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        return self.targets(list(self.personalizer.predict(np.stack(images))))

    def backbone_pass(self, images: list[np.ndarray]) -> None:
        """The limit, measured in this process: one backbone pass over the images."""
        from device_runtime.validation import check_images

        self.personalizer.backbone.features(check_images(np.stack(images)), batch_size=self.batch_size)


class VisionLimit(VisionEdgeft):
    """One backbone pass over the images and nothing else: no personalization can be faster."""

    backbone_pass = None  # the limit's own run is the backbone pass

    def fit(self, images: list[np.ndarray], labels: list[str], epochs: int) -> None:
        VisionEdgeft.backbone_pass(self, images)

    def accuracy(self, images: list[np.ndarray], labels: list[str]) -> None:
        return None


class _VisionPerStep(_Vision):
    """The per-step baselines: the backbone runs at every step of every epoch."""

    def fit(self, images: list[np.ndarray], labels: list[str], epochs: int) -> None:
        self.reset()
        train_per_step(self.step, images, self.targets(labels), epochs, self.config)


class VisionTextbookOrt(_VisionPerStep):
    """ORT's on-device training tutorial: the whole FP32 EfficientNet-Lite0 + head as training artifacts, backbone frozen."""

    def load(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A fresh zero head and fresh AdamW moments, from the artifacts' checkpoint."""
        from benchmarks.speed.fused import FusedTrainingSession

        self.session = FusedTrainingSession.from_folder(self.folder / TEXTBOOK)

    def step(self, images: list[np.ndarray], targets: np.ndarray, lr: float) -> None:
        self.session.learning_rate = lr
        self.session.fused_train_step([self.pixels(images), targets])

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        return self.session.fused_logits([self.pixels(images)]).argmax(axis=1)


class VisionTorch(_VisionPerStep):
    """PyTorch on the device: frozen EfficientNet-Lite0 (requires_grad=False), AdamW on the head, forward every step."""

    def load(self) -> None:
        import torch

        from export.vision import VISION_MODELS

        self.torch = torch
        self.backbone = VISION_MODELS["efficientnet-lite0"].build().eval().requires_grad_(False)

    def reset(self) -> None:
        torch = self.torch
        self.head = torch.nn.Linear(self.bundle.manifest.backbone.feature_size, len(self.classes))
        torch.nn.init.zeros_(self.head.weight)  # the same zero start as the bundle's head
        torch.nn.init.zeros_(self.head.bias)
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=self.config.lr, weight_decay=0.01)

    def step(self, images: list[np.ndarray], targets: np.ndarray, lr: float) -> None:
        torch = self.torch
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        features = self.backbone(torch.from_numpy(self.pixels(images)))
        loss = torch.nn.functional.cross_entropy(self.head(features), torch.from_numpy(targets))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        with self.torch.no_grad():
            return self.head(self.backbone(self.torch.from_numpy(self.pixels(images)))).argmax(1).numpy()
