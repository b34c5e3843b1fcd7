"""ExecuTorch on the device, two ways, for text and images; these workers run in the ExecuTorch environment.

- textbook: the backbone and the linear head as ONE training program (backbone
  frozen), ``forward_backward`` at every step, then ExecuTorch's SGD.
- cached: the backbone as an XNNPACK inference program (FP32 or INT8), once per
  example; the head trained on the cached features by a head-only training program.

ExecuTorch's Python API offers SGD only (no AdamW), so these rows use SGD with
the same learning rate, schedule (edgeft's, a fresh optimizer each step: with no
momentum SGD keeps no state) and the same weight decay the AdamW rows use.
The programs come from executorch_export.py with static shapes; batches are padded.
The textbook programs run on ExecuTorch's portable kernels (lowered with no
delegate), so they are timed on one step (runners.ONE_STEP).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.executorch.export import (
    FOLDER,
    IGNORE,
    STATIC_TOKENS,
    TEXT_FP32,
    TEXT_HEAD,
    TEXT_INT8,
    TEXT_TRAIN,
    VISION_FP32,
    VISION_HEAD,
    VISION_TRAIN,
)
from benchmarks.speed.alternatives import _PerStepBackbone
from benchmarks.speed.per_step import train_per_step
from benchmarks.speed.vision import _Vision

WEIGHT_DECAY = 0.01  # the PyTorch rows' AdamW decay; SGD's coupled decay gives the same lr * decay * weight pull


def padded(inputs: list, batch: int) -> list:
    """Each input tensor filled up to the programs' static batch with copies of its first row."""
    import torch

    n = len(inputs[0])
    return [torch.cat([x, x[:1].expand(batch - n, *x.shape[1:])]) if n < batch else x for x in inputs]


class TrainingProgram:
    """An ExecuTorch training ``.pte`` (loss first, logits second) and ExecuTorch's SGD on its parameters."""

    def __init__(self, path: Path, batch: int) -> None:
        self.path, self.batch = path, batch
        self.reset()

    def reset(self) -> None:
        """The program's own initial weights (a zero head), loaded afresh."""
        from executorch.extension.training import _load_for_executorch_for_training

        self.module = _load_for_executorch_for_training(str(self.path))

    def step(self, inputs: list, targets: np.ndarray, lr: float) -> None:
        """forward_backward, then one SGD step at ``lr``; padded examples carry the ignored label."""
        import torch
        from executorch.extension.training import get_sgd_optimizer

        labels = torch.full((self.batch,), IGNORE, dtype=torch.long)
        labels[: len(targets)] = torch.from_numpy(targets)
        self.module.forward_backward("forward", [*padded(inputs, self.batch), labels])
        optimizer = get_sgd_optimizer(self.module.named_parameters(), lr, weight_decay=WEIGHT_DECAY)
        optimizer.step(self.module.named_gradients())

    def logits(self, inputs: list) -> np.ndarray:
        """The program's second output; it runs the backward too (the training program has no other method)."""
        import torch

        labels = torch.full((self.batch,), IGNORE, dtype=torch.long)
        return self.module.forward_backward("forward", [*padded(inputs, self.batch), labels])[1][: len(inputs[0])].numpy()


class InferenceProgram:
    """An ExecuTorch+XNNPACK backbone ``.pte``, run a static batch at a time."""

    def __init__(self, path: Path, batch: int) -> None:
        from executorch.runtime import Runtime

        self.batch = batch
        self.method = Runtime.get().load_program(str(path)).load_method("forward")

    def features(self, inputs: list):
        import torch

        chunks = []
        for start in range(0, len(inputs[0]), self.batch):
            part = [x[start : start + self.batch] for x in inputs]
            chunks.append(self.method.execute(padded(part, self.batch))[0][: len(part[0])].clone())
        return torch.cat(chunks)


class _TextInputs(_PerStepBackbone):
    """The bundle's tokenizer, padded to the programs' static token count."""

    def load(self) -> None:
        super().load()
        self.tokenizer.enable_padding(length=STATIC_TOKENS)
        self.programs = self.cache / FOLDER

    def inputs(self, texts: list[str]) -> list:
        import torch

        encodings = self.tokenizer.encode_batch(texts)
        return [torch.tensor([e.ids for e in encodings]), torch.tensor([e.attention_mask for e in encodings])]

    def targets(self, labels: list[str]) -> np.ndarray:
        return np.array([self.classes.index(label) for label in labels], dtype=np.int64)


class _VisionInputs(_Vision):
    """The image bundle's own numpy preprocessing, as every vision alternative sees it."""

    def load(self) -> None:
        self.programs = self.folder.parent / FOLDER

    def inputs(self, images: list[np.ndarray]) -> list:
        import torch

        return [torch.from_numpy(self.pixels(images))]


class _Textbook:
    """One training program over backbone and head: the backbone runs at every step of every epoch."""

    program: str

    def load(self) -> None:
        super().load()
        self.trainer = TrainingProgram(self.programs / self.program, self.batch_size)

    def fit(self, examples: list, labels: list[str], epochs: int) -> None:
        self.trainer.reset()
        step = lambda batch, targets, lr: self.trainer.step(self.inputs(batch), targets, lr)
        train_per_step(step, examples, self.targets(labels), epochs, self.config)

    def predict(self, examples: list) -> np.ndarray:
        return self.trainer.logits(self.inputs(examples)).argmax(1)


class _Cached:
    """The XNNPACK backbone once per example, then the head's training program over the cached features."""

    backbone: str
    head: str = TEXT_HEAD

    def load(self) -> None:
        super().load()
        self.encoder = InferenceProgram(self.programs / self.backbone, self.batch_size)
        self.trainer = TrainingProgram(self.programs / self.head, self.batch_size)

    def fit(self, examples: list, labels: list[str], epochs: int) -> None:
        # Features computed afresh in every run, as edgeft's fresh personalizer does.
        features = list(self.encoder.features(self.inputs(examples)))
        self.trainer.reset()
        step = lambda rows, targets, lr: self.trainer.step([_stack(rows)], targets, lr)
        train_per_step(step, features, self.targets(labels), epochs, self.config)

    def predict(self, examples: list) -> np.ndarray:
        return self.trainer.logits([self.encoder.features(self.inputs(examples))]).argmax(1)


def _stack(rows: list):
    import torch

    return torch.stack(rows)


class TextTextbook(_Textbook, _TextInputs):
    """MiniLM + head as one ExecuTorch training program (portable kernels), SGD every step."""

    program = TEXT_TRAIN


class TextCachedFp32(_Cached, _TextInputs):
    """MiniLM FP32 on XNNPACK once per example, the head trained by ExecuTorch on the features."""

    backbone = TEXT_FP32


class TextCachedInt8(_Cached, _TextInputs):
    """MiniLM INT8 (dynamic, per-channel, XNNPACK quantizer) once per example, the head trained by ExecuTorch."""

    backbone = TEXT_INT8


class VisionTextbook(_Textbook, _VisionInputs):
    """EfficientNet-Lite0 + head as one ExecuTorch training program, SGD every step."""

    program = VISION_TRAIN


class VisionCachedFp32(_Cached, _VisionInputs):
    """EfficientNet-Lite0 FP32 on XNNPACK once per image, the head trained by ExecuTorch on the features."""

    backbone = VISION_FP32
    head = VISION_HEAD


ALTERNATIVES = {
    "executorch-textbook": TextTextbook,
    "executorch-fp32-cached": TextCachedFp32,
    "executorch-int8-cached": TextCachedInt8,
    "vision-executorch-textbook": VisionTextbook,
    "vision-executorch-fp32-cached": VisionCachedFp32,
}
