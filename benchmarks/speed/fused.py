"""The project's ORT training adapter, fed the fused model's several inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_runtime.ort_training import HeadTrainingSession


class FusedTrainingSession(HeadTrainingSession):
    """A :class:`HeadTrainingSession` whose graph takes token ids, not features.

    The fused backbone+head graph has inputs ``input_ids, attention_mask,
    token_type_ids, labels`` (or ``pixels, labels``) instead of ``features, labels``.
    """

    @classmethod
    def from_folder(cls, folder: Path) -> FusedTrainingSession:
        """The artifacts ``generate_artifacts`` wrote into ``folder``, at their checkpoint (a fresh head)."""
        return cls(
            folder / "training_model.onnx", folder / "eval_model.onnx", folder / "optimizer_model.onnx", folder / "checkpoint"
        )

    def fused_train_step(self, inputs: list[np.ndarray]) -> float:
        """One forward (through the backbone), backward and AdamW step; returns the loss."""
        self._module.train()
        loss, _ = self._module(*inputs)
        self._optimizer.step()
        self._module.lazy_reset_grad()
        return float(loss)

    def fused_logits(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Logits of a batch; the eval graph wants labels too, so it gets placeholders."""
        self._module.eval()
        _, logits = self._module(*inputs, np.zeros(len(inputs[0]), dtype=np.int64))
        return np.asarray(logits)
