"""The engine interface and the choice between engines."""

from __future__ import annotations

import abc
import os
import warnings
from pathlib import Path

import numpy as np

from device_runtime.head_graph import output_layer
from device_runtime.labels import SPARE_BIAS
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.config import Engine
from edgeft.errors import ConfigError


class EngineFallbackWarning(UserWarning):
    """engine="auto" chose numpy because ONNX Runtime training is not available."""


class HeadEngine(abc.ABC):
    """A trainable head: numpy features and class indices in, numpy out.

    Every engine applies AdamW as ORT's AdamW block does (HF/transformers mode:
    betas 0.9/0.999, eps 1e-6, bias correction, weight decay decoupled and
    applied after the Adam update).
    """

    name: str
    #: AdamW's decoupled weight decay, applied from the next step on.
    weight_decay: float
    #: L2-SP's strength: the loss gains l2sp/2 * sum ||W - W_shipped||^2 over the trainable weights (0: off).
    l2sp: float
    #: File suffix of this engine's resumable state (parameters and AdamW moments).
    state_suffix: str

    @abc.abstractmethod
    def train_step(self, features: np.ndarray, targets: np.ndarray, lr: float) -> float:
        """One AdamW step at learning rate ``lr`` on a batch; returns the batch's mean loss."""

    @abc.abstractmethod
    def logits(self, features: np.ndarray) -> np.ndarray:
        """Logits of a batch, shape (n, n_classes), without changing anything."""

    @abc.abstractmethod
    def parameters(self) -> dict[str, np.ndarray]:
        """A copy of the head's parameters, by name."""

    @abc.abstractmethod
    def set_parameters(self, values: dict[str, np.ndarray]) -> None:
        """Overwrite the head's parameters; the optimizer's moments are kept."""

    @abc.abstractmethod
    def claim_outputs(self, slots: list[int], reset_weights: bool) -> None:
        """Make output ``slots`` (spare ones, claimed by new labels) trainable from zero.

        Their L2-SP anchors become zero; with ``reset_weights`` their weights and bias do too
        (a head restored from a state has trained them already).
        """

    def release_outputs(self, slots: list[int]) -> None:
        """Put unclaimed spare output ``slots`` back as the bundle ships them: zero weights, a masking bias.

        They take no part in the loss, but AdamW's decoupled weight decay still shrinks their
        SPARE_BIAS by lr * weight_decay of it each step (about 1 a step at the defaults): left so,
        they would dominate the update a fleet device sends, and its clipping.
        """
        if not slots:
            return
        values = self.parameters()
        weight, bias = output_layer(list(values))
        values[weight][slots] = 0.0
        values[bias][slots] = SPARE_BIAS
        self.set_parameters({weight: values[weight], bias: values[bias]})

    @abc.abstractmethod
    def save(self, path: str | os.PathLike) -> None:
        """Write parameters and optimizer state to ``path``, so that training resumes exactly."""

    @abc.abstractmethod
    def export_head(self, path: str | os.PathLike) -> None:
        """Write the head as a plain ONNX inference model: ``features`` in, ``logits`` out."""


def resolve_engine(requested: Engine | str, bundle: Bundle | None = None) -> Engine:
    """The engine that will run.

    ``auto`` becomes ORT where its training API loads and the bundle ships ORT's artifacts; else the step graphs
    where the bundle ships them (plain onnxruntime trains the head, the last blocks and LoRA); else numpy, with a warning.

    Raises:
        ConfigError: ``engine="ort"`` was asked for but ORT training cannot load here or the bundle ships no ORT
            artifacts, or ``engine="step"`` for a bundle without step graphs.
    """
    from device_runtime.engines.step_engine import step_graphs_problem
    from device_runtime.ort_training import training_available

    requested = Engine(requested)
    if requested is Engine.NUMPY:
        return Engine.NUMPY
    steps = "no bundle was given" if bundle is None else step_graphs_problem(bundle)
    if requested is Engine.STEP:
        if steps:
            raise ConfigError(f'engine="step" was requested, but {steps}. Re-export the bundle, or use engine="auto".')
        return Engine.STEP
    problem = ort_artifacts_problem(bundle) or training_available()
    if problem is None:
        return Engine.ORT
    if requested is Engine.ORT:
        usable = (
            '"step" (or "auto")'
            if bundle is not None and bundle.manifest.head.backbone_blocks
            else '"step" or "numpy" (or "auto")'
        )
        raise ConfigError(f'engine="ort" was requested, but {problem}. Use engine={usable}.')
    if not steps:
        return Engine.STEP
    warnings.warn(f"{problem[0].upper()}{problem[1:]}, so the numpy engine trains the head.", EngineFallbackWarning, stacklevel=3)
    return Engine.NUMPY


def ort_artifacts_problem(bundle: Bundle | None) -> str | None:
    """None unless ``bundle`` ships without ORT's training artifacts; then one sentence (no trailing period) saying so."""
    if bundle is None or bundle.manifest.head.ort_artifacts:
        return None
    return (
        f"bundle {bundle.manifest.name!r} ships no ORT training artifacts (it was exported where onnxruntime-training "
        "was missing); re-export it where onnxruntime-training-cpu installs (CPython 3.10-3.12 on x86-64) to add them"
    )


def open_engine(
    engine: Engine,
    bundle: Bundle,
    state: str | os.PathLike | None = None,
    weight_decay: float | None = None,
    threads: tuple[int, int] = (0, 0),
    providers: tuple[str, ...] | None = None,
) -> HeadEngine:
    """An engine holding the bundle's shipped head, or the head and moments saved at ``state``.

    Args:
        engine: ``Engine.ORT``, ``Engine.STEP`` or ``Engine.NUMPY`` (resolve ``auto`` first).
        bundle: the bundle whose head trains.
        state: a file written by that engine's :meth:`HeadEngine.save`; None: the shipped head.
        weight_decay: AdamW's decoupled weight decay; None keeps the bundle's.
        threads: intra-op and inter-op threads of ORT's sessions (0 lets ORT choose; numpy ignores them).
        providers: execution providers of the step engine's sessions (None: the CPU); the others run on the CPU.
    """
    decay = bundle.manifest.head.weight_decay if weight_decay is None else weight_decay
    if engine is Engine.ORT:
        from device_runtime.engines.ort_engine import OrtEngine

        return OrtEngine(bundle, Path(state) if state else bundle.file(layout.CHECKPOINT), decay, threads)
    if engine is Engine.STEP:
        from device_runtime.engines.step_engine import StepEngine

        return StepEngine(bundle, Path(state) if state else None, decay, threads, providers)
    from device_runtime.engines.numpy_engine import NumpyEngine

    return NumpyEngine(bundle, Path(state) if state else None, decay)
