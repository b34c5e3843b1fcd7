"""The head trained in numpy: the same graph, loss, AdamW and schedule as ORT's artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from device_runtime.engines import l2sp as l2sp_term
from device_runtime.engines.base import HeadEngine
from device_runtime.engines.npz_state import AdamState
from device_runtime.head_graph import head_inference_model, layer_names, output_layer
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.errors import BundleError, ConfigError
from edgeft.metrics import log_softmax

# ORT's AdamW block (onnxblock.optim.AdamW) defaults, which the bundle's optimizer artifact bakes in.
BETA1, BETA2, EPS = 0.9, 0.999, 1e-6


class NumpyEngine(HeadEngine):
    """A linear or one-hidden-layer ReLU head with mean cross-entropy and HF-style AdamW, in float32.

    Args:
        bundle: the bundle whose head this is; its shipped parameters come
            from ``head/parameters.npz``, or from the ORT checkpoint where
            the training API is installed.
        state: a file written by :meth:`save`; None starts from the shipped head.
        weight_decay: AdamW's decoupled weight decay.

    Raises:
        ConfigError: the bundle is fused (its head trains backbone blocks too).
        BundleError: the bundle has no numpy-readable head parameters.
        StateError: ``state`` is not a numpy engine state.
    """

    name = "numpy"
    state_suffix = ".npz"

    def __init__(self, bundle: Bundle, state: Path | None, weight_decay: float) -> None:
        spec = bundle.manifest.head
        if spec.backbone_blocks:
            raise ConfigError(
                f"Bundle {bundle.manifest.name!r} trains its last {spec.backbone_blocks} backbone block(s) with the "
                'head, which the numpy engine cannot run: it trains a linear or MLP head only. Use engine="auto" '
                "(the step graphs on any onnxruntime, or ORT's training artifacts where onnxruntime-training loads)."
            )
        self._layers = layer_names(spec.kind)
        self.weight_decay = weight_decay
        self.l2sp = 0.0
        shipped = shipped_parameters(bundle)
        self._anchor = {name: shipped[name] for name in l2sp_term.penalized(list(shipped))}  # L2-SP pulls toward them
        adam = AdamState.fresh(shipped) if state is None else AdamState.load(state)
        self._params, self._m, self._v, self._step = adam.params, adam.m, adam.v, adam.step

    def train_step(self, features: np.ndarray, targets: np.ndarray, lr: float) -> float:
        activations = self._forward(features)
        log_probs = log_softmax(activations[-1])
        rows = np.arange(len(targets))
        loss = float(np.mean(-log_probs[rows, targets]))
        grad = np.exp(log_probs)  # d(loss)/d(logits), times the batch size: softmax minus the one-hot target
        grad[rows, targets] -= 1.0
        grads = self._backward(activations, grad / np.float32(len(targets)))
        if self.l2sp:
            strength = np.float32(self.l2sp)
            for name, anchor in self._anchor.items():
                drift = self._params[name] - anchor
                loss += 0.5 * self.l2sp * float(np.sum(drift * drift))
                grads[name] = grads[name] + strength * drift
        self._adamw(grads, lr)
        return loss

    def logits(self, features: np.ndarray) -> np.ndarray:
        return self._forward(features)[-1]

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._params.items()}

    def set_parameters(self, values: dict[str, np.ndarray]) -> None:
        for name, value in values.items():
            self._params[name] = np.array(value, dtype=np.float32).reshape(self._params[name].shape)

    def claim_outputs(self, slots: list[int], reset_weights: bool) -> None:
        for name in output_layer(list(self._params)):
            if name in self._anchor:
                self._anchor[name] = self._anchor[name].copy()
                self._anchor[name][slots] = 0.0
            if reset_weights:
                self._params[name][slots] = 0.0

    def save(self, path: str | os.PathLike) -> None:
        AdamState(self._params, self._m, self._v, self._step).save(path)

    def export_head(self, path: str | os.PathLike) -> None:
        head_inference_model(self._layers, self._params, path)

    def _forward(self, features: np.ndarray) -> list[np.ndarray]:
        """Inputs of every layer, then the logits (ReLU between layers)."""
        activations = [np.asarray(features, dtype=np.float32)]
        for i, (w, b) in enumerate(self._layers):
            out = activations[-1] @ self._params[w].T + self._params[b]
            activations.append(np.maximum(out, 0) if i < len(self._layers) - 1 else out)
        return activations

    def _backward(self, activations: list[np.ndarray], grad: np.ndarray) -> dict[str, np.ndarray]:
        grads = {}
        for i in reversed(range(len(self._layers))):
            w, b = self._layers[i]
            grads[w] = grad.T @ activations[i]
            grads[b] = grad.sum(axis=0)
            if i:
                grad = (grad @ self._params[w]) * (activations[i] > 0)
        return grads

    def _adamw(self, grads: dict[str, np.ndarray], lr: float) -> None:
        """HF/transformers AdamW (ORT's adam_mode=1): Adam step, then decoupled decay of the new weights."""
        self._step += 1
        step_size = lr * np.sqrt(1 - BETA2**self._step) / (1 - BETA1**self._step)
        for name, g in grads.items():
            self._m[name] = BETA1 * self._m[name] + (1 - BETA1) * g
            self._v[name] = BETA2 * self._v[name] + (1 - BETA2) * g * g
            p = self._params[name] - np.float32(step_size) * self._m[name] / (np.sqrt(self._v[name]) + np.float32(EPS))
            if self.weight_decay:
                p = p - np.float32(lr * self.weight_decay) * p
            self._params[name] = p.astype(np.float32)


def shipped_parameters(bundle: Bundle) -> dict[str, np.ndarray]:
    """The shipped head's parameters: ``head/parameters.npz``, or the ORT checkpoint where ORT training loads."""
    if layout.PARAMETERS in bundle.manifest.files:
        return {k: v.astype(np.float32) for k, v in bundle.read_arrays(layout.PARAMETERS).items()}
    from device_runtime.ort_training import training_available

    if training_available() is None:
        from device_runtime.engines.ort_engine import OrtEngine

        return OrtEngine(bundle, bundle.file(layout.CHECKPOINT), 0.0).parameters()
    raise BundleError(
        f"Bundle {bundle.manifest.name!r} has no {layout.PARAMETERS}, and its ORT checkpoint cannot be read "
        "without onnxruntime-training. Re-export the bundle with this edgeft version."
    )
