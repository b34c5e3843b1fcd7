"""The ways to personalize, each a class with the same four calls.

``load()`` is start-up (sessions, weights), ``load_data()`` reads the splits
prepare.py wrote, ``fit(examples, labels, epochs)`` trains a fresh zero head,
and ``accuracy(examples, labels)`` scores it on held-out data. torch and
transformers are imported inside the methods that need them, so the edgeft and
limit processes never load torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.speed.config import DATA, FP32_BUNDLE, INT8_BUNDLE, TEXTBOOK
from benchmarks.speed.per_step import train_per_step
from benchmarks.speed.vision import VisionEdgeft, VisionLimit, VisionTextbookOrt, VisionTorch


class _Text:
    """Where the text alternatives find the BBC News splits that prepare.py wrote."""

    def __init__(self, cache: Path, batch_size: int, lr: float) -> None:
        self.cache, self.batch_size, self.lr = cache, batch_size, lr

    def load_data(self) -> dict:
        return json.loads((self.cache / DATA).read_text())


class Edgeft(_Text):
    """The bundle's INT8 backbone once per example, then the head over its features through ORT."""

    def load(self) -> None:
        from device_runtime import Personalizer
        from edgeft.bundle import Bundle

        self.bundle = Bundle.load(self.cache / INT8_BUNDLE)
        self.personalizer = Personalizer(self.bundle)

    def fit(self, texts: list[str], labels: list[str], epochs: int) -> None:
        from device_runtime import Personalizer

        # A fresh personalizer per run: an empty feature cache, so every run pays for its backbone pass.
        # No held-out split and no acceptance guard: every alternative trains on all N examples.
        self.personalizer = Personalizer(self.bundle)
        self.personalizer.fit(
            texts, labels, epochs=epochs, batch_size=self.batch_size, lr=self.lr, validation_fraction=0.0, accept="always"
        )

    def accuracy(self, texts: list[str], labels: list[str]) -> float:
        return self.personalizer.score(texts, labels)

    def backbone_pass(self, texts: list[str]) -> None:
        """The limit, measured in this process: one INT8 backbone pass over the examples."""
        self.personalizer.backbone.features(texts, batch_size=self.batch_size)


class Limit(Edgeft):
    """One INT8 backbone pass over the examples and nothing else: no personalization can be faster."""

    backbone_pass = None  # the limit's own run is the backbone pass

    def fit(self, texts: list[str], labels: list[str], epochs: int) -> None:
        self.personalizer.backbone.features(texts, batch_size=self.batch_size)

    def accuracy(self, texts: list[str], labels: list[str]) -> float | None:
        return None


class _PerStepBackbone(_Text):
    """Shared by the two per-step baselines: the bundle's tokenizer and edgeft's learning-rate schedule."""

    def __init__(self, cache: Path, batch_size: int, lr: float) -> None:
        from edgeft.config import TrainConfig

        super().__init__(cache, batch_size, lr)
        self.config = TrainConfig(lr=lr, batch_size=batch_size)

    def load(self) -> None:
        from tokenizers import Tokenizer

        from edgeft.bundle import Bundle
        from edgeft.layout import TOKENIZER

        bundle = Bundle.load(self.cache / FP32_BUNDLE)
        self.classes = bundle.manifest.labels
        self.input_names = bundle.manifest.input.input_names
        # The device runtime's tokenizer settings: truncation, padding to the batch's longest text.
        self.tokenizer = Tokenizer.from_file(str(bundle.file(TOKENIZER)))
        self.tokenizer.enable_truncation(bundle.manifest.input.max_length)
        self.tokenizer.enable_padding()

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """The backbone's inputs, in the order of the bundle's ``input_names``."""
        from device_runtime.backbone import text_feeds

        feeds = text_feeds(self.tokenizer.encode_batch(texts), self.input_names)
        return [feeds[name] for name in self.input_names]

    def fit(self, texts: list[str], labels: list[str], epochs: int) -> None:
        self.reset()
        targets = np.array([self.classes.index(label) for label in labels], dtype=np.int64)
        train_per_step(self.step, texts, targets, epochs, self.config)

    def accuracy(self, texts: list[str], labels: list[str]) -> float:
        targets = np.array([self.classes.index(label) for label in labels])
        predicted = np.concatenate([self.predict(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)])
        return float((predicted == targets).mean())


class TextbookOrt(_PerStepBackbone):
    """ORT's on-device training tutorial: the fused FP32 model's artifacts, backbone frozen, forward every step."""

    def load(self) -> None:
        super().load()
        self.reset()

    def reset(self) -> None:
        """A fresh zero head and fresh AdamW moments, from the artifacts' checkpoint."""
        from benchmarks.speed.fused import FusedTrainingSession  # here: the PyTorch worker never loads ORT training

        self.session = FusedTrainingSession.from_folder(self.cache / TEXTBOOK)

    def step(self, texts: list[str], targets: np.ndarray, lr: float) -> None:
        self.session.learning_rate = lr
        self.session.fused_train_step([*self.encode(texts), targets])

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.session.fused_logits(self.encode(texts)).argmax(axis=1)


class TorchEager(_PerStepBackbone):
    """PyTorch on the device: MiniLM with requires_grad=False, AdamW on a linear head, forward every step."""

    def load(self) -> None:
        super().load()
        import torch
        from transformers import AutoModel

        from example_data import minilm_path

        self.torch = torch
        self.backbone = AutoModel.from_pretrained(minilm_path()).eval()
        self.backbone.requires_grad_(False)
        self.reset()

    def reset(self) -> None:
        torch = self.torch
        self.head = torch.nn.Linear(self.backbone.config.hidden_size, len(self.classes))
        torch.nn.init.zeros_(self.head.weight)  # the same zero start as the bundle's head
        torch.nn.init.zeros_(self.head.bias)
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=self.config.lr, weight_decay=0.01)

    def features(self, texts: list[str]):
        """all-MiniLM-L6-v2's sentence embedding: mean over real tokens, then unit length."""
        inputs = {name: self.torch.from_numpy(a) for name, a in zip(self.input_names, self.encode(texts))}
        mask = inputs["attention_mask"]
        tokens = self.backbone(**inputs).last_hidden_state
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return self.torch.nn.functional.normalize(pooled, dim=1)

    def step(self, texts: list[str], targets: np.ndarray, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.torch.nn.functional.cross_entropy(self.head(self.features(texts)), self.torch.from_numpy(targets))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def predict(self, texts: list[str]) -> np.ndarray:
        with self.torch.no_grad():
            return self.head(self.features(texts)).argmax(1).numpy()


ALTERNATIVES = {
    "edgeft": Edgeft,
    "textbook-ort": TextbookOrt,
    "pytorch": TorchEager,
    "limit": Limit,
    "vision-edgeft": VisionEdgeft,
    "vision-textbook-ort": VisionTextbookOrt,
    "vision-pytorch": VisionTorch,
    "vision-limit": VisionLimit,
}
