"""ORT's training artifacts where onnxruntime-training loads; where it does not, a bundle that the step graphs train.

onnxruntime-training's last release (1.19.2) has wheels for CPython 3.10-3.12 on x86-64 only, so an exporter on
CPython 3.13 or on aarch64 cannot write ORT's artifacts. It still writes the step graphs (:mod:`export.step_graph`),
which any onnxruntime trains, and says once what the bundle lacks; the manifest's ``head.ort_artifacts`` records it.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import onnx

from device_runtime import Personalizer
from device_runtime.ort_training import training_available
from edgeft.config import Engine
from edgeft.errors import ExportError
from edgeft.manifest import HeadSpec
from export.head import write_training_artifacts

INSTALL_HINT = (
    "export where onnxruntime-training-cpu 1.19.2 installs (CPython 3.10-3.12 on x86-64 Linux, macOS or x86-64 "
    'Windows: pip install "edgeft[export]" there) to add them'
)


class OrtArtifactsWarning(UserWarning):
    """The bundle ships without ORT's training artifacts: onnxruntime-training does not load where it was exported."""


def write_ort_artifacts(model: onnx.ModelProto, spec: HeadSpec, folder: Path) -> HeadSpec:
    """ORT's training artifacts of ``model`` into ``folder`` where onnxruntime-training loads; else none, with a warning.

    Returns:
        The spec, with ``l2sp`` set, or with ``ort_artifacts`` False where none were written.

    Raises:
        ExportError: neither ORT's artifacts nor step graphs can train the bundle's backbone blocks.
    """
    problem = training_available()
    if problem is None:
        return write_training_artifacts(model, spec, folder)
    if not spec.step_batch and (spec.backbone_blocks or spec.lora_rank):
        raise ExportError(
            f"The bundle's backbone blocks cannot train: {problem}, and it has no step graphs (see the StepGraphWarning "
            f"above). Export without device_trainable_blocks, or {INSTALL_HINT}."
        )
    trains = "its step graphs train it on any onnxruntime" if spec.step_batch else "the numpy engine trains its head"
    warnings.warn(
        f"{problem[0].upper()}{problem[1:]}, so the bundle ships without ORT's training artifacts (head/training_model.onnx, "
        f"eval_model.onnx, optimizer_model.onnx, checkpoint): {trains}, and engine='ort' cannot. To add them, {INSTALL_HINT}.",
        OrtArtifactsWarning,
        stacklevel=3,
    )
    return dataclasses.replace(spec, ort_artifacts=False)


def save_checkpoint(personalizer: Personalizer, spec: HeadSpec, path: Path) -> None:
    """The head trained at the server as the bundle's ORT checkpoint, where ORT's artifacts ship (else there is none)."""
    if spec.ort_artifacts:
        personalizer.save_head_checkpoint(path)


def server_engine(spec: HeadSpec) -> Engine:
    """The engine the exporter trains the shipped head with, on its own split (no device-side validation or guard):
    ORT's artifacts where they ship, else the step graphs."""
    if spec.ort_artifacts:
        return Engine.ORT
    return Engine.STEP if spec.step_batch else Engine.NUMPY
