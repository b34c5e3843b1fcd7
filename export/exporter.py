"""A backbone (through its adapter, ``export.adapters``) + server data -> a verified bundle: :func:`export_bundle`."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx.numpy_helper

from device_runtime import Personalizer, acceptance, reference_statistics
from device_runtime.drift import drift_features
from device_runtime.monitor import reference_sample
from device_runtime.trainer import ProgressCallback
from device_runtime.validation import check_labels
from edgeft import atomic, layout
from edgeft.bundle import Bundle, write_manifest
from edgeft.config import (
    ExportConfig,
    Pooling,
    RuntimeConfig,
    TrainConfig,
    default_train_config,
    to_dict,
)
from edgeft.errors import ExportError
from edgeft.manifest import BackboneSpec, HeadSpec, InputSpec, Manifest
from edgeft.signing import UnsignedBundleWarning
from export.adapters import Adapter, BackboneOptions, ExportedBackbone, adapter_for
from export.adapters.base import TEXT_SAMPLE
from export.head import build_head
from export.measure import take
from export.onnx_file import feature_size
from export.ort_artifacts import save_checkpoint, server_engine, write_ort_artifacts
from export.precision import ship_backbone
from export.request import FineTuning, ServerData

if TYPE_CHECKING:  # export.fused imports torch, which exporting an ONNX file must not
    from export.fused import FusedParts

# ONNX vs torch on the same input; float32 kernels differ by ~1e-6, a broken export by far more.
_PARITY_TOLERANCE = 1e-3
# Backbone latency is timed on one batch of this many server examples.
_LATENCY_BATCH = 16


@dataclasses.dataclass(frozen=True)
class _Source:
    """An ONNX backbone ready to bundle (FP32, unless a given file was quantized already), and what the
    manifest says about it."""

    fp32: Path
    input: InputSpec
    output_name: str
    feature_size: int
    pooling: Pooling
    task: str
    base_model: dict[str, Any]
    extra_files: dict[str, Path]  # bundle file name -> file to copy in
    metrics: dict[str, Any]  # measured while exporting (e.g. ONNX-vs-torch parity)
    fused: FusedParts | None = None  # the trainable tail, when the backbone is cut (device_trainable_blocks)
    quantized: list[str] = dataclasses.field(default_factory=list)  # what marks a given file as quantized already


def export_bundle(
    source: Any,
    output: str | os.PathLike,
    *,
    data: ServerData = ServerData(),
    config: ExportConfig = ExportConfig(),
    backbone: BackboneOptions = BackboneOptions(),
    train_config: TrainConfig | None = None,
    fine_tuning: FineTuning | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Manifest:
    """Export a backbone and the server data to a verified bundle, through the adapter that claims the source.

    Args:
        source: a Hugging Face / sentence-transformers model folder, an ``.onnx`` file, a torch module
            ((n, 3, h, w) images to (n, features); float tensors with ``backbone.tensor``), a packaged model's
            name (``efficientnet-lite0``), or ``"cnn1d"`` (a small 1-D CNN for float tensors, trained here);
            ``export.adapters.ADAPTERS`` says which adapter takes it. An adapter from
            ``export.adapters.adapter_for`` is used as it is.
        output: the bundle folder to write; it appears only once complete.
        data: the server examples; with them the shipped head is trained on a training split, the
            validation split measures it, and all of them measure INT8 against FP32.
        config: bundle identity, quantization and its quality guard, head shape, device-trained blocks.
        backbone: how to read the source where it does not say (an ONNX file's feature output, pooling and
            tokenizer; image preprocessing; a torch module's example input; the adapter by name).
        train_config: hyperparameters for the server-side head training, also
            shipped as the device's defaults (None: ``default_train_config(config, modality)``).
        fine_tuning: fine-tune the backbone in torch on the server data first (same seed and split as
            the head, so validation stays unseen); ``cnn1d`` is always trained, by default as
            ``export.adapters.tensor.SCRATCH_FINE_TUNING`` says.
        overwrite: replace an existing bundle at ``output``.
        progress: called as server features are computed and epochs finish.

    Returns:
        The manifest written; ``metrics["quantization"]`` says which precision shipped and why, and
        ``metrics["parity_max_abs_diff"]`` (where there is a source to compare) the largest difference
        between ONNX Runtime's features and the source's.

    Raises:
        ExportError: no adapter claims the source, it cannot be exported, its kind cannot do what
            ``config`` or ``fine_tuning`` asks, no label set is known, or an INT8 mode chosen by name
            loses more accuracy than ``config`` allows.
        ConfigError: an ONNX file is given without its feature output, or with fine-tuning.
        DataError: the server examples are empty, mismatched, mislabelled or of the wrong modality.
    """
    adapter = adapter_for(source, backbone)
    train_config = train_config or default_train_config(config, adapter.modality)
    X, labels = data.read(adapter.image_size())
    fine_tuning = fine_tuning or adapter.default_fine_tuning()
    adapter.check(X, config, fine_tuning is not None)
    classes, X = _checked_data(adapter, X, labels, data.label_set, output, overwrite)
    with tempfile.TemporaryDirectory() as work:
        metrics = {} if fine_tuning is None else _fine_tune(adapter, X, labels, classes, fine_tuning, config, Path(work))
        if config.device_trainable_blocks:
            exported = adapter.export_cut(Path(work), X, len(classes), config, train_config.seed)
        else:
            exported = adapter.export_onnx(Path(work), X, config)
        if exported.parity is not None:
            _check_parity(exported.parity)
            metrics["parity_max_abs_diff"] = exported.parity
        bundled = _bundled(adapter, exported, config, metrics)
        return _build(bundled, Path(work), output, classes, X, labels, config, train_config, overwrite, progress)


def _bundled(adapter: Adapter, exported: ExportedBackbone, config: ExportConfig, metrics: dict[str, Any]) -> _Source:
    """The exported backbone with what the manifest says about it."""
    return _Source(
        fp32=exported.fp32,
        input=adapter.input_spec(exported.fp32, config),
        output_name=exported.output_name,
        feature_size=feature_size(exported.fp32, exported.output_name),
        pooling=exported.pooling,
        task=f"{adapter.modality}-classification",
        base_model=_base_model(config, adapter),
        extra_files=exported.extra_files,
        metrics=metrics,
        fused=exported.fused,
        quantized=exported.quantized,
    )


def _fine_tune(
    adapter: Adapter, X: Any, labels: list[str], classes: list[str], tuning: FineTuning, config: ExportConfig, work: Path
) -> dict[str, Any]:
    """Fine-tune the adapter's source on the server data; it then exports the fine-tuned model. Returns the metrics."""
    from export.tuning import run_fine_tuning

    if X is None:
        raise ExportError("Fine-tuning trains on server data: give labelled examples (--train-data).")
    tuned, _, metrics = run_fine_tuning(
        adapter.tunable(config), X, labels, classes, tuning.config, trials=tuning.trials, log_dir=tuning.log_dir
    )
    adapter.adopt(tuned, work)
    return metrics


def _check_parity(diff: float) -> None:
    """The exported graph must compute what the source model does, up to float rounding."""
    if diff > _PARITY_TOLERANCE:
        raise ExportError(
            f"The ONNX backbone differs from the torch model by up to {diff:.2e} (tolerance {_PARITY_TOLERANCE:.0e}); "
            "the export is wrong. Is the module in eval mode, and free of data-dependent control flow?"
        )


def _checked_data(
    adapter: Adapter, X: Any, labels: list[str] | None, label_set: list[str] | None, output: Any, overwrite: bool
) -> tuple[list[str], Any]:
    """Everything a user can get wrong, checked before any slow work starts."""
    classes = _label_set(labels, label_set)
    if X is not None:
        X = adapter.check_examples(X)
        check_labels(labels, classes, len(X), fix="add them to the label set (--labels), or leave those examples out")
    if Path(output).exists() and not overwrite:
        raise ExportError(f"{output} already exists; choose another output or pass overwrite (--overwrite).")
    return classes, X


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


def _base_model(config: ExportConfig, adapter: Adapter) -> dict[str, Any]:
    """The config's name and licence; a packaged model's own where the config leaves the defaults."""
    license = config.license
    if adapter.packaged is not None and license == ExportConfig.license:
        license = adapter.packaged.license
    return {"name": config.base_model or adapter.default_name, "license": license, "source": adapter.origin}


def _build(
    source: _Source,
    work: Path,
    output: str | os.PathLike,
    classes: list[str],
    X: Any,
    labels: list[str] | None,
    config: ExportConfig,
    train_config: TrainConfig,
    overwrite: bool,
    progress: ProgressCallback | None,
) -> Manifest:
    """Write the bundle: FP32 first, train and measure the head, then quantize, measure and check."""
    with atomic.atomic_dir(output, overwrite=overwrite) as folder:
        for name, file in source.extra_files.items():
            shutil.copyfile(file, folder / name)
        shutil.copyfile(source.fp32, folder / layout.BACKBONE)
        fused = source.fused
        if fused is None:
            head, head_spec = build_head(source.feature_size, len(classes), config, seed=train_config.seed)
        else:
            head, head_spec = fused.tail, fused.head_spec
        head_spec, step_parity = _step_graphs(head, head_spec, folder, train_config.batch_size)
        head_spec = write_ort_artifacts(head, head_spec, folder / "head")
        _write_head_parameters(folder, head_spec, {t.name: onnx.numpy_helper.to_array(t) for t in head.graph.initializer})
        manifest = write_manifest(
            folder,
            Manifest(
                name=config.name,
                version=config.version,
                task=source.task,
                labels=classes,
                base_model=source.base_model,
                input=source.input,
                backbone=BackboneSpec(
                    precision="fp32",
                    feature_size=source.feature_size,
                    output_name=source.output_name,
                    pooling=source.pooling.value,
                    intermediate_shape=None if fused is None else fused.intermediate_shape,
                ),
                head=head_spec,
                training=to_dict(train_config),
            ),
        )
        with _unsigned_ok():
            personalizer = Personalizer(Bundle.load(folder), runtime=RuntimeConfig(engine=server_engine(head_spec)))
        metrics = dict(source.metrics)
        if step_parity is not None:
            metrics["step_graph_parity"] = step_parity
        if not source.quantized:  # a pre-quantized file has no FP32 size to report
            metrics["backbone_bytes_fp32"] = source.fp32.stat().st_size
        bench = _sample(source.input) if X is None else take(X, np.arange(min(len(X), _LATENCY_BATCH)))
        validation = None
        if X is not None:
            validation = _train_shipped_head(personalizer, X, labels, config, train_config, metrics, progress)
            save_checkpoint(personalizer, head_spec, folder / layout.CHECKPOINT)
            _write_head_parameters(folder, head_spec, personalizer.head_parameters())
        precision, shipped = ship_backbone(
            folder / layout.BACKBONE, work, personalizer, X, labels, validation, bench, config, source.quantized
        )
        metrics.update(shipped)
        metrics["backbone_bytes"] = (folder / layout.BACKBONE).stat().st_size
        manifest = write_manifest(
            folder,
            dataclasses.replace(
                manifest,
                backbone=dataclasses.replace(manifest.backbone, precision=precision),
                head=dataclasses.replace(manifest.head, trained=X is not None),
                metrics=metrics,
            ),
        )
        if X is not None:
            manifest = _write_reference(folder, manifest, X, labels, validation, config.replay_per_class, train_config.seed)
        _check_bundle(folder, manifest, bench)
    return manifest


def _train_shipped_head(
    personalizer: Personalizer,
    X: Any,
    labels: list[str],
    config: ExportConfig,
    train_config: TrainConfig,
    metrics: dict[str, Any],
    progress: ProgressCallback | None,
) -> np.ndarray | None:
    """Train the head on the training split with the device runtime itself; measure it on validation.

    Returns:
        The indices of the validation split, or None when the data is too small to hold any out.
    """
    train, val = acceptance.validation_split(labels, config.validation_fraction, train_config.seed)
    X_train, y_train = take(X, train), [labels[i] for i in train]
    # No L2-SP at the server: its anchor is the untrained head the artifacts start from.
    personalizer.fit(X_train, y_train, progress=progress, validation_fraction=0.0, accept="always", l2sp=0.0)
    report = personalizer.evaluate(X_train, y_train)
    metrics.update(
        {
            "server_examples": len(X),
            "server_train_examples": len(train),
            "server_train_accuracy": report["accuracy"],
            "server_train_macro_f1": report["macro_f1"],
        }
    )
    if len(val) == 0:
        return None
    X_val, y_val = take(X, val), [labels[i] for i in val]
    report = personalizer.evaluate(X_val, y_val)
    metrics.update(
        {
            "validation_examples": len(val),
            "validation_accuracy": report["accuracy"],
            "validation_macro_f1": report["macro_f1"],
        }
    )
    return val


def _step_graphs(head: onnx.ModelProto, spec: HeadSpec, folder: Path, batch: int) -> tuple[HeadSpec, float | None]:
    """The step graphs (:mod:`export.step_graph`), which torch traces; without torch the bundle ships none."""
    try:
        import torch  # noqa: F401 (an ONNX file's export runs without torch)
    except ImportError:
        from export.step_graph_warning import StepGraphWarning

        warnings.warn("torch is not installed, so the bundle ships without step graphs.", StepGraphWarning, stacklevel=2)
        return spec, None
    from export.step_graph import write_step_graphs

    return write_step_graphs(head, spec, folder, batch)


def _write_head_parameters(folder: Path, spec: HeadSpec, parameters: dict[str, np.ndarray]) -> None:
    """The shipped head's trainable parameters as numpy arrays, so that the numpy and step engines need no
    onnxruntime-training (a fused bundle's frozen weights are inside its graphs)."""
    _write_npz(folder / layout.PARAMETERS, {name: parameters[name] for name in spec.trainable})


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic.write_bytes(path, buffer.getvalue())


def _write_reference(
    folder: Path, manifest: Manifest, X: Any, labels: list[str], held_out: np.ndarray | None, per_class: int, seed: int
) -> Manifest:
    """Through the backbone that ships: feature and confidence statistics and a bounded sample of them
    (drift's reference), the replay set and the guard set.

    Replay rows come from the rows the shipped head trained on; guard rows from the ``held_out`` validation
    split it never saw, so the device judges a new head on rows neither head has memorised (docs/device.md).
    """
    with _unsigned_ok():
        personalizer = Personalizer.from_bundle(folder)
    head_inputs = personalizer.transform(X)
    features = drift_features(head_inputs, manifest.backbone.intermediate_shape)
    probabilities = personalizer.predict_proba(X)
    atomic.write_json(folder / layout.REFERENCE, reference_statistics(features, probabilities))
    _write_npz(folder / layout.REFERENCE_SAMPLE, reference_sample(features, probabilities, layout.REFERENCE_SAMPLE_ROWS, seed=0))
    targets = check_labels(labels, manifest.labels, len(labels))
    held = np.zeros(len(targets), bool)
    held[held_out if held_out is not None else []] = True
    replay = np.flatnonzero(~held)[replay_selection(targets[~held], per_class, seed)]
    guard = np.flatnonzero(held)[replay_selection(targets[held], per_class, seed)]
    # A cut bundle's rows are whole activations (a text cut at 128 tokens: 197 KB each in float32): float16 halves them.
    dtype = np.float32 if manifest.backbone.intermediate_shape is None else np.float16
    for name, rows in ((layout.REPLAY, replay), (layout.GUARD, guard)):
        if len(rows):
            _write_npz(folder / name, {"features": np.asarray(head_inputs[rows], dtype), "labels": targets[rows]})
    head = dataclasses.replace(manifest.head, replay_examples=len(replay), guard_examples=len(guard))
    return write_manifest(folder, dataclasses.replace(manifest, head=head))


def replay_selection(targets: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Up to ``per_class`` random example indices of every class (all of a smaller class), sorted."""
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(targets == label))[:per_class] for label in np.unique(targets)]
    return np.sort(np.concatenate(chosen)) if chosen else np.arange(0)


@contextlib.contextmanager
def _unsigned_ok() -> Iterator[None]:
    """The exporter loads its own bundle before it is complete, so before it can be signed: no warning for that."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsignedBundleWarning)
        yield


def _sample(spec: InputSpec) -> Any:
    if spec.modality == "text":
        return TEXT_SAMPLE
    if spec.modality == "tensor":
        return np.zeros((1, *spec.tensor_shape), np.float32)
    return np.zeros((1, *spec.image_size, 3), np.uint8)


def _check_bundle(folder: Path, manifest: Manifest, sample: Any) -> None:
    """Load what was written as a device would and run it, one training step included.

    No bundle whose backbone or training artifacts fail on real input leaves here.
    """
    with _unsigned_ok():
        personalizer = Personalizer.from_bundle(folder)
    rows = sample[:4]
    features = personalizer.transform(rows)
    if features.shape != (len(rows), manifest.backbone.feature_size):
        raise ExportError(
            f"The backbone gives features of shape {features.shape}, expected ({len(rows)}, {manifest.backbone.feature_size})."
        )
    targets = [manifest.labels[i % len(manifest.labels)] for i in range(len(rows))]
    personalizer.fit(rows, targets, epochs=1, validation_fraction=0.0, accept="always")
    if not np.isfinite(personalizer.history_[-1]):
        raise ExportError("One training step of the shipped head artifacts gave a non-finite loss; the bundle is broken.")
