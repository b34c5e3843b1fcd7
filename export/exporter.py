"""Model folder + (optional) server data -> a verified bundle, in one call."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import onnx

from device_runtime import Personalizer
from device_runtime.trainer import ProgressCallback
from device_runtime.validation import check_labels, check_texts
from edgeft import atomic
from edgeft import bundle as layout
from edgeft.bundle import BackboneSpec, InputSpec, Manifest, write_manifest
from edgeft.config import ExportConfig, TrainConfig, to_dict
from edgeft.errors import ExportError
from export.head import build_head, write_training_artifacts
from export.quantize import quantize_backbone
from export.text import SENTENCE_OUTPUT, export_text_backbone, graph_inputs


def export_text_model(
    model_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    texts: list[str] | None = None,
    labels: list[str] | None = None,
    label_set: list[str] | None = None,
    config: ExportConfig = ExportConfig(),
    train_config: TrainConfig = TrainConfig(),
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Manifest:
    """Export a Hugging Face / sentence-transformers text model to a bundle.

    Args:
        model_dir: local model folder (config.json, weights, tokenizer.json).
        output: the bundle folder to write; it appears only once complete.
        texts, labels: server-side examples; with them the shipped head is
            trained (and ``trained`` is true in the manifest).
        label_set: the classes, in order; defaults to the sorted labels seen.
        config: bundle identity, quantization, head shape.
        train_config: hyperparameters for the server-side head training, also
            shipped as the device's defaults.
        overwrite: replace an existing bundle at ``output``.
        progress: called as server features are computed and epochs finish.

    Returns:
        The manifest written.

    Raises:
        ExportError: the model folder cannot be exported, or no label set is known.
        DataError: the server examples are empty, mismatched or mislabelled.
    """
    classes = _label_set(labels, label_set)
    if texts is not None:
        texts = check_texts(texts)
        check_labels(labels, classes, len(texts))
    if Path(output).exists() and not overwrite:
        raise ExportError(f"{output} already exists; choose another output or pass overwrite (--overwrite).")
    with tempfile.TemporaryDirectory() as work, atomic.atomic_dir(output, overwrite=overwrite) as folder:
        manifest = _write_untrained_bundle(Path(model_dir), Path(work), folder, classes, config, train_config)
        if texts is not None:
            manifest = _train_shipped_head(folder, manifest, texts, labels, progress)
        _check_bundle(folder, manifest)
    return manifest


def _label_set(labels: list[str] | None, label_set: list[str] | None) -> list[str]:
    classes = list(label_set) if label_set else sorted({str(v) for v in labels or []})
    if len(classes) < 2:
        raise ExportError(
            f"A classifier needs at least 2 labels, got {classes}. Give server data with "
            "labels (--train-data) or the label set (--labels a,b,c)."
        )
    if len(set(classes)) != len(classes):
        raise ExportError(f"The label set has duplicates: {classes}")
    return classes


def _write_untrained_bundle(
    model_dir: Path, work: Path, folder: Path, classes: list[str], config: ExportConfig, train_config: TrainConfig
) -> Manifest:
    fp32, tokenizer = export_text_backbone(model_dir, work / "onnx")
    precision = quantize_backbone(fp32, folder / layout.BACKBONE, config.quantization)
    (folder / layout.TOKENIZER).write_bytes(tokenizer.read_bytes())
    feature_size = _feature_size(folder / layout.BACKBONE)
    head, head_spec = build_head(feature_size, len(classes), config, seed=train_config.seed)
    write_training_artifacts(head, head_spec, folder / "head")
    manifest = Manifest(
        name=config.name,
        version=config.version,
        task="text-classification",
        labels=classes,
        base_model={"name": config.base_model or model_dir.name, "license": config.license, "source": str(model_dir)},
        input=InputSpec(
            modality="text", input_names=graph_inputs(fp32), tokenizer=layout.TOKENIZER, max_length=config.max_length
        ),
        backbone=BackboneSpec(precision=precision, feature_size=feature_size, output_name=SENTENCE_OUTPUT),
        head=head_spec,
        training=to_dict(train_config),
        metrics={
            "backbone_bytes_fp32": fp32.stat().st_size,
            "backbone_bytes": (folder / layout.BACKBONE).stat().st_size,
        },
    )
    return write_manifest(folder, manifest)


def _train_shipped_head(
    folder: Path, manifest: Manifest, texts: list[str], labels: list[str], progress: ProgressCallback | None
) -> Manifest:
    """Train the head on the server data with the device runtime itself, and ship it as version 0."""
    personalizer = Personalizer.from_bundle(folder)
    personalizer.fit(texts, labels, progress=progress)
    report = personalizer.evaluate(texts, labels)
    personalizer.save_head_checkpoint(folder / layout.CHECKPOINT)
    metrics: dict[str, Any] = {
        **manifest.metrics,
        "server_examples": len(texts),
        "server_train_accuracy": report["accuracy"],
        "server_train_macro_f1": report["macro_f1"],
    }
    head = dataclasses.replace(manifest.head, trained=True)
    return write_manifest(folder, dataclasses.replace(manifest, head=head, metrics=metrics))


def _check_bundle(folder: Path, manifest: Manifest) -> None:
    """Load what was written as a device would, and run it once: no broken bundle leaves here."""
    personalizer = Personalizer.from_bundle(folder)
    features = personalizer.transform(["edgeft checks the bundle before it ships."])
    if features.shape != (1, manifest.backbone.feature_size):
        raise ExportError(f"The backbone gives features of shape {features.shape}, expected (1, {manifest.backbone.feature_size}).")


def _feature_size(backbone: Path) -> int:
    # optimum leaves the FP32 graph's feature dimension symbolic; shape inference resolves it.
    for output in onnx.shape_inference.infer_shapes(onnx.load(str(backbone))).graph.output:
        if output.name == SENTENCE_OUTPUT:
            return output.type.tensor_type.shape.dim[-1].dim_value
    raise ExportError(f"{backbone} has no output {SENTENCE_OUTPUT!r}")


