"""The head trained by ONNX Runtime, through the bundle's training artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from device_runtime.engines import l2sp as l2sp_term
from device_runtime.engines.base import HeadEngine
from device_runtime.head_graph import output_layer
from device_runtime.ort_training import HeadTrainingSession
from device_runtime.sessions import session_options
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.errors import ConfigError


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
        self._has_l2sp = bundle.manifest.head.l2sp
        self._l2sp = 0.0
        if self._has_l2sp:
            self.l2sp = 0.0

    @property
    def l2sp(self) -> float:
        return self._l2sp

    @l2sp.setter
    def l2sp(self, value: float) -> None:
        """The graph's L2-SP strength is a frozen parameter: setting it needs no new session."""
        if not self._has_l2sp:
            if value:
                raise ConfigError("This bundle's training graph has no L2-SP term (exported before it); use l2sp=0.")
            return
        self._session.set_parameters({l2sp_term.STRENGTH: np.array(value, np.float32)})
        self._l2sp = float(value)

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
        return {k: v for k, v in self._session.parameters().items() if not k.startswith("l2sp.")}

    def set_parameters(self, values: dict[str, np.ndarray]) -> None:
        self._session.set_parameters(values)

    def claim_outputs(self, slots: list[int], reset_weights: bool) -> None:
        layer = output_layer(self._trainable)
        anchored = l2sp_term.penalized(list(layer)) if self._has_l2sp else []
        names = [*(layer if reset_weights else ()), *(l2sp_term.ANCHOR + n for n in anchored)]
        if not names:
            return
        changed = {name: self._session.parameters()[name].copy() for name in names}
        for values in changed.values():
            values[slots] = 0.0
        self._session.set_parameters(changed)

    def save(self, path: str | os.PathLike) -> None:
        self._session.save_checkpoint(path, include_optimizer_state=True)

    def save_head_checkpoint(self, path: str | os.PathLike) -> None:
        """The parameters alone, as the ORT checkpoint a bundle ships as its head.

        A shipped head is its own L2-SP anchor, so the anchors are written as the
        current weights (and put back afterwards: this engine's runs keep theirs).
        """
        if not self._has_l2sp:
            self._session.save_checkpoint(path, include_optimizer_state=False)
            return
        everything = self._session.parameters()
        anchors = {k: v for k, v in everything.items() if k.startswith(l2sp_term.ANCHOR)}
        self._session.set_parameters({l2sp_term.ANCHOR + name: everything[name] for name in l2sp_term.penalized(self._trainable)})
        self._session.set_parameters({l2sp_term.STRENGTH: np.array(0.0, np.float32)})
        self._session.save_checkpoint(path, include_optimizer_state=False)
        self._session.set_parameters({**anchors, l2sp_term.STRENGTH: np.array(self._l2sp, np.float32)})

    def export_head(self, path: str | os.PathLike) -> None:
        self._session.export_inference_model(path, ["logits"])
