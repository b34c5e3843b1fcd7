"""The head trained by ONNX Runtime, through the bundle's training artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from device_runtime.engines.base import HeadEngine
from device_runtime.ort_training import HeadTrainingSession
from device_runtime.sessions import session_options
from edgeft import bundle as layout
from edgeft.bundle import Bundle


class OrtEngine(HeadEngine):
    """ORT's Module and AdamW over the bundle's head.

    Weight decay: the bundle's optimizer artifact has its decay baked in
    (``manifest.head.weight_decay``). A different device-side value is applied
    exactly, after each ORT step, by rescaling the parameters: ORT has already
    multiplied them by ``1 - lr * baked``; we rescale by
    ``(1 - lr * wanted) / (1 - lr * baked)``. With the bundle's own value (the
    default) no rescaling happens and ORT alone does the step.

    Args:
        bundle: the bundle whose artifacts define the head.
        checkpoint: an ORT checkpoint: the shipped head or a saved state.
        weight_decay: AdamW's decoupled weight decay for this run.
        threads: intra-op and inter-op threads of the head's sessions (0 lets ORT choose).
    """

    name = "ort"
    state_suffix = ".ckpt"

    def __init__(self, bundle: Bundle, checkpoint: Path, weight_decay: float, threads: tuple[int, int] = (0, 0)) -> None:
        self._session = HeadTrainingSession(
            bundle.file(layout.TRAINING_MODEL),
            bundle.file(layout.EVAL_MODEL),
            bundle.file(layout.OPTIMIZER_MODEL),
            checkpoint,
            session_options=session_options(*threads),
        )
        self._baked_decay = bundle.manifest.head.weight_decay
        self.weight_decay = weight_decay
        self._trainable = list(bundle.manifest.head.trainable)

    def train_step(self, features: np.ndarray, targets: np.ndarray, lr: float) -> float:
        self._session.learning_rate = lr
        loss = self._session.train_step(features, targets)
        if self.weight_decay != self._baked_decay:
            scale = (1.0 - lr * self.weight_decay) / (1.0 - lr * self._baked_decay)
            params = self._session.parameters()
            self._session.set_parameters({name: params[name] * np.float32(scale) for name in self._trainable})
        return loss

    def logits(self, features: np.ndarray) -> np.ndarray:
        return self._session.logits(features)

    def parameters(self) -> dict[str, np.ndarray]:
        return self._session.parameters()

    def set_parameters(self, values: dict[str, np.ndarray]) -> None:
        self._session.set_parameters(values)

    def save(self, path: str | os.PathLike) -> None:
        self._session.save_checkpoint(path, include_optimizer_state=True)

    def save_head_checkpoint(self, path: str | os.PathLike) -> None:
        """The parameters alone, as the ORT checkpoint a bundle ships as its head."""
        self._session.save_checkpoint(path, include_optimizer_state=False)

    def export_head(self, path: str | os.PathLike) -> None:
        self._session.export_inference_model(path, ["logits"])
