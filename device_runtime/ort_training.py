"""The one adapter between edgeft and ONNX Runtime's training API.

``import onnxruntime.training`` runs a package ``__init__`` that imports torch,
which a device must never load. Its ``api`` submodules need only ORT's C
bindings, so we register a bare package object for ``onnxruntime.training``
(pointing at the installed folder) before importing them. Everything else in
edgeft talks to ORT training through :class:`HeadTrainingSession`, numpy in
and numpy out, and never sees an ORT exception.
"""

from __future__ import annotations

import os
import types
from typing import Any

import numpy as np

from device_runtime import _onnxruntime
from device_runtime._onnxruntime import TRAINING_DISTRIBUTIONS, register_bare_training_package
from edgeft.errors import StateError


def training_available() -> str | None:
    """None where ORT's training API loads here, else one sentence (no trailing period) saying why not."""
    try:
        training_api().CheckpointState  # noqa: B018 (the attribute access is the check)
    except (ImportError, AttributeError, OSError) as e:
        installed = _onnxruntime.describe()
        if any(name in TRAINING_DISTRIBUTIONS for name, _ in _onnxruntime.distributions()):
            return f"the training API of the installed {installed} failed to load ({type(e).__name__}: {e})"
        return (
            f"the installed {installed} has no training API (onnxruntime-training-cpu is not installed: its last "
            "release has wheels only for CPython 3.10-3.12 on x86-64 Linux, macOS and x86-64 Windows)"
        )
    return None


def training_api() -> types.ModuleType:
    register_bare_training_package()
    from onnxruntime.training import api

    return api


class HeadTrainingSession:
    """ORT's CheckpointState, Module and Optimizer for one head, as one object.

    Args:
        training_model, eval_model, optimizer_model: the artifacts' ONNX files.
        checkpoint: the ORT checkpoint holding the head's parameters (and,
            when saved with it, AdamW's moments).
        device: "cpu" or "cuda" (where the installed ORT build has CUDA).
        session_options: ``onnxruntime.SessionOptions`` (thread counts) for the training and eval sessions.
    """

    def __init__(
        self,
        training_model: str | os.PathLike,
        eval_model: str | os.PathLike,
        optimizer_model: str | os.PathLike,
        checkpoint: str | os.PathLike,
        device: str = "cpu",
        session_options: Any = None,
    ) -> None:
        api = training_api()
        try:
            self._state = api.CheckpointState.load_checkpoint(str(checkpoint))
            self._module = api.Module(str(training_model), self._state, str(eval_model), device, session_options)
            self._optimizer = api.Optimizer(str(optimizer_model), self._module)
        except RuntimeError as e:
            raise StateError(f"ONNX Runtime could not load the head from {checkpoint}: {e}") from e

    def train_step(self, features: np.ndarray, targets: np.ndarray) -> float:
        """One forward, backward and AdamW step on a batch; returns the batch loss."""
        self._module.train()
        try:
            loss, _ = self._module(features, targets)
            self._optimizer.step()
        except RuntimeError as e:  # shapes and dtypes are validated first; this is ORT itself failing
            raise StateError(f"ONNX Runtime failed in a training step: {e}") from e
        self._module.lazy_reset_grad()
        return float(loss)

    def eval_step(self, features: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss and logits on a batch, without touching the parameters."""
        self._module.eval()
        try:
            loss, logits = self._module(features, targets)
        except RuntimeError as e:
            raise StateError(f"ONNX Runtime failed to run the head: {e}") from e
        return float(loss), np.asarray(logits)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Logits for a batch. The eval graph computes a loss too, so it gets placeholder targets."""
        return self.eval_step(features, np.zeros(len(features), dtype=np.int64))[1]

    @property
    def learning_rate(self) -> float:
        return float(self._optimizer.get_learning_rate())

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._optimizer.set_learning_rate(float(value))

    def parameters(self) -> dict[str, np.ndarray]:
        """A copy of every parameter of the head, by name."""
        return {name: np.array(p.data) for name, p in self._state.parameters}

    def set_parameters(self, values: dict[str, np.ndarray]) -> None:
        """Overwrite the named parameters (shapes must match); AdamW's moments are kept."""
        parameters = self._state.parameters
        for name, value in values.items():
            parameters[name].data = np.require(value, np.float32, "C")  # ascontiguousarray would make a scalar 1-d

    def save_checkpoint(self, path: str | os.PathLike, *, include_optimizer_state: bool = True) -> None:
        """Write the head (by default with AdamW's moments, so training resumes exactly)."""
        training_api().CheckpointState.save_checkpoint(self._state, str(path), include_optimizer_state=include_optimizer_state)

    def export_inference_model(self, path: str | os.PathLike, output_names: list[str]) -> None:
        """Write the head as a plain inference ONNX model with its current weights."""
        self._module.export_model_for_inferencing(str(path), output_names)
