"""A backbone (HF text folder, torch vision module, or ONNX file) + server data -> a verified bundle."""

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

from device_runtime import Personalizer, reference_statistics
from device_runtime.drift import drift_features
from device_runtime.monitor import reference_sample
from device_runtime.trainer import ProgressCallback
from device_runtime.validation import check_images, check_labels, check_texts
from edgeft import atomic
from edgeft import bundle as layout
from edgeft.bundle import BackboneSpec, Bundle, InputSpec, Manifest, write_manifest
from edgeft.config import (
    ExportConfig,
    FineTuneConfig,
    ImagePreprocessing,
    Pooling,
    Quantization,
    RuntimeConfig,
    TrainConfig,
    default_train_config,
    to_dict,
)
from edgeft.errors import ExportError
from edgeft.signing import UnsignedBundleWarning
from export.head import build_head, write_training_artifacts
from export.measure import split_indices, take
from export.onnx_file import feature_size, graph_inputs, input_shape, prepare_onnx_backbone, quantization_evidence
from export.precision import ship_backbone
from export.text import SENTENCE_OUTPUT, export_text_backbone, text_parity
from export.vision import INPUT, OUTPUT, export_torch_backbone

if TYPE_CHECKING:  # export.fused imports torch, which exporting an ONNX file must not
    from export.fused import FusedParts

# The texts the bundle check runs when there is no server data.
_TEXT_SAMPLE = ["edgeft checks the bundle before it ships."]
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


def export_text_model(
    model_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    texts: list[str] | None = None,
    labels: list[str] | None = None,
    label_set: list[str] | None = None,
    config: ExportConfig = ExportConfig(),
    train_config: TrainConfig | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    fine_tune: FineTuneConfig | None = None,
    tune_trials: int = 0,
    log_dir: str | os.PathLike | None = None,
) -> Manifest:
    """Export a Hugging Face / sentence-transformers text model to a bundle.

    Args:
        model_dir: local model folder (config.json, weights, tokenizer.json).
        output: the bundle folder to write; it appears only once complete.
        texts, labels: server-side examples; with them the shipped head is
            trained on a training split, the validation split measures it, and
            all of them measure the INT8 backbone's agreement with FP32.
        label_set: the classes, in order; defaults to the sorted labels seen.
        config: bundle identity, quantization and its quality guard, head shape.
        train_config: hyperparameters for the server-side head training, also
            shipped as the device's defaults (None: ``default_train_config(config)``).
        overwrite: replace an existing bundle at ``output``.
        progress: called as server features are computed and epochs finish.
        fine_tune: fine-tune the backbone in torch on the server data first
            (same seed and split as the head, so validation stays unseen).
        tune_trials: run an Optuna search of this many trials over lr, weight
            decay, dropout and unfrozen depth before fine-tuning.
        log_dir: where fine-tuning writes finetune.json and finetune.png.

    Returns:
        The manifest written; ``metrics["quantization"]`` says which precision
        shipped and why (under ``quantization="auto"``, with the figures it chose by).

    Raises:
        ExportError: the model folder cannot be exported, no label set is
            known, fine-tuning has no data, or an INT8 mode chosen by name loses
            more accuracy than ``config`` allows.
        DataError: the server examples are empty, mismatched or mislabelled.
    """
    train_config = train_config or default_train_config(config, "text")
    classes, texts = _checked_data("text", texts, labels, label_set, output, overwrite)
    if config.device_trainable_blocks:
        from export.text_fused import check_folder

        check_folder(model_dir, config)  # before fine-tuning, which may take long
    with tempfile.TemporaryDirectory() as work:
        tuned_dir, metrics = model_dir, {}
        if fine_tune is not None:
            from export.tuning import run_fine_tuning, save_text_model, text_tunable

            _require_data(texts)
            tunable, _, metrics = run_fine_tuning(
                text_tunable(model_dir, config.max_length), texts, labels, classes, fine_tune,
                trials=tune_trials, log_dir=log_dir,
            )
            tuned_dir = save_text_model(tunable, model_dir, Path(work) / "tuned")
        sample, fused = list((texts or _TEXT_SAMPLE)[:4]), None
        if config.device_trainable_blocks:
            from export.text_fused import OUTPUT, export_text_cut

            fused, tokenizer = export_text_cut(tuned_dir, sample, len(classes), config, Path(work), train_config.seed)
            fp32, output_name, parity = fused.frozen, OUTPUT, fused.parity
        else:
            fp32, tokenizer = export_text_backbone(tuned_dir, Path(work) / "onnx")
            output_name, parity = SENTENCE_OUTPUT, text_parity(tuned_dir, fp32, sample, config.max_length)
        _check_parity(parity)
        source = _Source(
            fp32=fp32,
            input=InputSpec(
                modality="text", input_names=graph_inputs(fp32), tokenizer=layout.TOKENIZER, max_length=config.max_length
            ),
            output_name=output_name,
            feature_size=feature_size(fp32, output_name),
            pooling=Pooling.NONE,
            task="text-classification",
            base_model=_base_model(config, Path(model_dir).name, model_dir),
            extra_files={layout.TOKENIZER: tokenizer},
            metrics={**metrics, "parity_max_abs_diff": parity},
            fused=fused,
        )
        return _build(source, Path(work), output, classes, texts, labels, config, train_config, overwrite, progress)


def export_model(
    module: object,
    example_input: object,
    output: str | os.PathLike,
    *,
    images: np.ndarray | None = None,
    labels: list[str] | None = None,
    label_set: list[str] | None = None,
    preprocessing: ImagePreprocessing = ImagePreprocessing(),
    config: ExportConfig = ExportConfig(),
    train_config: TrainConfig | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    fine_tune: FineTuneConfig | None = None,
    tune_trials: int = 0,
    log_dir: str | os.PathLike | None = None,
) -> Manifest:
    """Export a torch vision backbone to a bundle whose device side needs no torch.

    Args:
        module: a ``torch.nn.Module`` mapping (n, 3, h, w) float images to (n, features).
        example_input: a tensor of one real input's shape, e.g. ``torch.zeros(1, 3, 224, 224)``.
        output: the bundle folder to write; it appears only once complete.
        images, labels: server examples, uint8 (n, h, w) or (n, h, w, c) RGB.
        label_set: the classes, in order; defaults to the sorted labels seen.
        preprocessing: how the module's training turned pixels into its input;
            written to the manifest and applied by the device in numpy.
        config, train_config, overwrite, progress: as for :func:`export_text_model`.
        fine_tune, tune_trials, log_dir: as for :func:`export_text_model`
            (the module is fine-tuned in place).

    Returns:
        The manifest written; ``metrics["parity_max_abs_diff"]`` is the largest
        difference between ONNX Runtime's and torch's features.

    Raises:
        ExportError: the module cannot be exported, or as for :func:`export_text_model`.
        DataError: the server images are not uint8 arrays of a usable shape.
    """
    train_config = train_config or default_train_config(config)
    classes, images = _checked_data("image", images, labels, label_set, output, overwrite)
    if config.device_trainable_blocks:
        from export.fused import check_fusable

        check_fusable(module, config)  # before fine-tuning, which may take long
    metrics: dict[str, Any] = {}
    if fine_tune is not None:
        from export.tuning import run_fine_tuning, vision_tunable

        _require_data(images)
        spec = InputSpec(modality="image", input_names=[INPUT], image_size=list(preprocessing.size),
                         pixel_mean=list(preprocessing.mean), pixel_std=list(preprocessing.std),
                         channel_order=preprocessing.channel_order.value, layout=preprocessing.layout.value)
        _, _, metrics = run_fine_tuning(vision_tunable(module, spec), images, labels, classes, fine_tune,
                                        trials=tune_trials, log_dir=log_dir)
    with tempfile.TemporaryDirectory() as work:
        fused = None
        if config.device_trainable_blocks:
            from export.fused import export_fused

            fused = export_fused(module, example_input, len(classes), config, Path(work), seed=train_config.seed)
            fp32, parity = fused.frozen, fused.parity
        else:
            fp32 = Path(work) / "backbone.onnx"
            parity = export_torch_backbone(module, example_input, fp32)
        _check_parity(parity)
        source = _Source(
            fp32=fp32,
            input=_image_input(fp32, [INPUT], preprocessing),
            output_name=OUTPUT,
            feature_size=feature_size(fp32, OUTPUT),
            pooling=Pooling.NONE,
            task="image-classification",
            base_model=_base_model(config, type(module).__name__, "torch module"),
            extra_files={},
            metrics={**metrics, "parity_max_abs_diff": parity},
            fused=fused,
        )
        return _build(source, Path(work), output, classes, images, labels, config, train_config, overwrite, progress)


def export_onnx_model(
    onnx_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    feature_output: str,
    pooling: Pooling | str = Pooling.NONE,
    tokenizer: str | os.PathLike | None = None,
    preprocessing: ImagePreprocessing = ImagePreprocessing(),
    X: list[str] | np.ndarray | None = None,
    labels: list[str] | None = None,
    label_set: list[str] | None = None,
    config: ExportConfig = ExportConfig(),
    train_config: TrainConfig | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Manifest:
    """Export an existing ONNX backbone file to a bundle; needs onnx and ONNX Runtime, not torch.

    With ``tokenizer`` the backbone reads text, otherwise images preprocessed
    as ``preprocessing`` says.

    Args:
        onnx_path: the backbone's ONNX file.
        output: the bundle folder to write; it appears only once complete.
        feature_output: the graph output that holds the features.
        pooling: "none" when that output is (batch, features); "mean" (over
            the attention mask) or "cls" when it is (batch, tokens, hidden).
        tokenizer: a Hugging Face tokenizer.json, for a text backbone.
        preprocessing: pixels to input, for an image backbone.
        X, labels: server examples (texts, or uint8 images).
        label_set, config, train_config, overwrite, progress: as for :func:`export_text_model`.

    Returns:
        The manifest written.

    Raises:
        ExportError: the file is not a usable ONNX model or lacks ``feature_output``,
            is quantized already and ``config`` asks to quantize it again, or as for
            :func:`export_text_model`.
        DataError: the server examples do not fit the backbone's modality.
    """
    _refuse_fused(config, "ONNX backbone files")
    train_config = train_config or default_train_config(config)
    pooling = Pooling(pooling) if pooling in {p.value for p in Pooling} else _bad_pooling(pooling)
    modality = "text" if tokenizer is not None else "image"
    if tokenizer is None and isinstance(X, list) and X and isinstance(X[0], str):
        raise ExportError("The server data holds text, but no tokenizer was given: a text backbone needs its "
                          "tokenizer.json (--tokenizer). Without one the ONNX file is taken for an image backbone.")
    if tokenizer is not None and not Path(tokenizer).is_file():
        raise ExportError(f"Tokenizer file {tokenizer} does not exist; pass a Hugging Face tokenizer.json.")
    if not Path(onnx_path).is_file():
        raise ExportError(f"ONNX file {onnx_path} does not exist.")
    classes, X = _checked_data(modality, X, labels, label_set, output, overwrite)
    with tempfile.TemporaryDirectory() as work:
        fp32 = Path(work) / "backbone.onnx"
        output_name, size = prepare_onnx_backbone(onnx_path, fp32, feature_output, pooling)
        quantized = quantization_evidence(fp32)
        if quantized and config.quantization not in (Quantization.AUTO, Quantization.NONE):
            raise ExportError(
                f"{onnx_path} is quantized already ({', '.join(quantized)}); quantizing it again as "
                f"{config.quantization.value} would stack a second rounding on the first. Export it with "
                "--quantize auto or none, which ship it as given, or give its FP32 original."
            )
        inputs = graph_inputs(fp32)
        if modality == "text":
            spec = InputSpec(modality="text", input_names=inputs, tokenizer=layout.TOKENIZER, max_length=config.max_length)
        else:
            spec = _image_input(fp32, inputs, preprocessing)
        source = _Source(
            fp32=fp32,
            input=spec,
            output_name=output_name,
            feature_size=size,
            pooling=pooling,
            task=f"{modality}-classification",
            base_model=_base_model(config, Path(onnx_path).stem, onnx_path),
            extra_files={layout.TOKENIZER: Path(tokenizer)} if tokenizer is not None else {},
            metrics={},
            quantized=quantized,
        )
        return _build(source, Path(work), output, classes, X, labels, config, train_config, overwrite, progress)


def _check_parity(diff: float) -> None:
    """The exported graph must compute what the torch model does, up to float rounding."""
    if diff > _PARITY_TOLERANCE:
        raise ExportError(
            f"The ONNX backbone differs from the torch model by up to {diff:.2e} (tolerance {_PARITY_TOLERANCE:.0e}); "
            "the export is wrong. Is the module in eval mode, and free of data-dependent control flow?"
        )


def _refuse_fused(config: ExportConfig, what: str) -> None:
    """Only EfficientNet-Lite and BERT-like text encoders are cut into a frozen part and a trainable tail so far."""
    if config.device_trainable_blocks:
        raise ExportError(
            f"device_trainable_blocks (--device-trainable-blocks) is not supported for {what} yet, only for "
            "efficientnet-lite0 and BERT-like text encoders; export with device_trainable_blocks=0 (the head alone "
            "trains on the device)."
        )


def _require_data(X: Any) -> None:
    if X is None:
        raise ExportError("Fine-tuning trains on server data: give labelled examples (--train-data).")


def _bad_pooling(value: object) -> Pooling:
    raise ExportError(f"pooling must be one of {', '.join(p.value for p in Pooling)}; got {value!r}")


def _checked_data(
    modality: str, X: Any, labels: list[str] | None, label_set: list[str] | None, output: Any, overwrite: bool
) -> tuple[list[str], Any]:
    """Everything a user can get wrong, checked before any slow work starts."""
    classes = _label_set(labels, label_set)
    if X is not None:
        X = check_texts(X) if modality == "text" else check_images(X)
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


def _image_input(model: Path, input_names: list[str], p: ImagePreprocessing) -> InputSpec:
    if len(input_names) != 1:
        raise ExportError(f"An image backbone must have one input, this one has {input_names}.")
    shape = input_shape(model, input_names[0])
    spatial = shape[2:4] if p.layout.value == "NCHW" else shape[1:3]
    if len(shape) != 4 or any(d is not None and d != want for d, want in zip(spatial, p.size)):
        raise ExportError(
            f"The backbone's input {input_names[0]!r} has shape {shape} ({p.layout.value}), which does not take "
            f"{p.size[0]}x{p.size[1]} images; set the image size (--image-size) and layout (--layout) the backbone expects."
        )
    return InputSpec(
        modality="image", input_names=input_names, image_size=list(p.size), pixel_mean=list(p.mean),
        pixel_std=list(p.std), channel_order=p.channel_order.value, layout=p.layout.value,
    )


def _base_model(config: ExportConfig, default_name: str, source: Any) -> dict[str, Any]:
    return {"name": config.base_model or default_name, "license": config.license, "source": str(source)}


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
        head_spec = write_training_artifacts(head, head_spec, folder / "head")
        # The numpy engine cannot train a tail of conv blocks, so a fused bundle ships no numpy head.
        if fused is None:
            _write_head_parameters(folder, {t.name: onnx.numpy_helper.to_array(t) for t in head.graph.initializer})
        manifest = write_manifest(folder, Manifest(
            name=config.name,
            version=config.version,
            task=source.task,
            labels=classes,
            base_model=source.base_model,
            input=source.input,
            backbone=BackboneSpec(
                precision="fp32", feature_size=source.feature_size, output_name=source.output_name,
                pooling=source.pooling.value, intermediate_shape=None if fused is None else fused.intermediate_shape,
            ),
            head=head_spec,
            training=to_dict(train_config),
        ))
        # The server's head trains through ORT on its own split: no device-side validation split or guard.
        with _unsigned_ok():
            personalizer = Personalizer(Bundle.load(folder), runtime=RuntimeConfig(engine="ort"))
        metrics = dict(source.metrics)
        if not source.quantized:  # a pre-quantized file has no FP32 size to report
            metrics["backbone_bytes_fp32"] = source.fp32.stat().st_size
        bench = _sample(source.input) if X is None else take(X, np.arange(min(len(X), _LATENCY_BATCH)))
        validation = None
        if X is not None:
            validation = _train_shipped_head(personalizer, X, labels, config, train_config, metrics, progress)
            personalizer.save_head_checkpoint(folder / layout.CHECKPOINT)
            if fused is None:
                _write_head_parameters(folder, personalizer.head_parameters())
        precision, shipped = ship_backbone(
            folder / layout.BACKBONE, work, personalizer, X, labels, validation, bench, config, source.quantized
        )
        metrics.update(shipped)
        metrics["backbone_bytes"] = (folder / layout.BACKBONE).stat().st_size
        manifest = write_manifest(folder, dataclasses.replace(
            manifest,
            backbone=dataclasses.replace(manifest.backbone, precision=precision),
            head=dataclasses.replace(manifest.head, trained=X is not None),
            metrics=metrics,
        ))
        if X is not None:
            manifest = _write_reference(folder, manifest, X, labels, config.replay_per_class, train_config.seed)
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
    train, val = split_indices(labels, config.validation_fraction, train_config.seed)
    X_train, y_train = take(X, train), [labels[i] for i in train]
    # No L2-SP at the server: its anchor is the untrained head the artifacts start from.
    personalizer.fit(X_train, y_train, progress=progress, validation_fraction=0.0, accept="always", l2sp=0.0)
    report = personalizer.evaluate(X_train, y_train)
    metrics.update({
        "server_examples": len(X),
        "server_train_examples": len(train),
        "server_train_accuracy": report["accuracy"],
        "server_train_macro_f1": report["macro_f1"],
    })
    if len(val) == 0:
        return None
    X_val, y_val = take(X, val), [labels[i] for i in val]
    report = personalizer.evaluate(X_val, y_val)
    metrics.update({
        "validation_examples": len(val),
        "validation_accuracy": report["accuracy"],
        "validation_macro_f1": report["macro_f1"],
    })
    return val


def _write_head_parameters(folder: Path, parameters: dict[str, np.ndarray]) -> None:
    """The shipped head as numpy arrays, so that the numpy engine needs no onnxruntime-training."""
    _write_npz(folder / layout.PARAMETERS, parameters)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic.write_bytes(path, buffer.getvalue())


def _write_reference(
    folder: Path, manifest: Manifest, X: Any, labels: list[str], replay_per_class: int, seed: int
) -> Manifest:
    """Through the backbone that ships: feature and confidence statistics and a bounded sample of them
    (drift's reference), and the replay set."""
    with _unsigned_ok():
        personalizer = Personalizer.from_bundle(folder)
    head_inputs = personalizer.transform(X)
    features = drift_features(head_inputs, manifest.backbone.intermediate_shape)
    probabilities = personalizer.predict_proba(X)
    atomic.write_json(folder / layout.REFERENCE, reference_statistics(features, probabilities))
    _write_npz(folder / layout.REFERENCE_SAMPLE, reference_sample(features, probabilities, layout.REFERENCE_SAMPLE_ROWS, seed=0))
    targets = check_labels(labels, manifest.labels, len(labels))
    rows = replay_selection(targets, replay_per_class, seed)
    if len(rows):
        # A cut bundle's rows are whole activations (a text cut at 128 tokens: 197 KB each in float32): float16 halves them.
        dtype = np.float32 if manifest.backbone.intermediate_shape is None else np.float16
        _write_npz(folder / layout.REPLAY, {"features": np.asarray(head_inputs[rows], dtype), "labels": targets[rows]})
    head = dataclasses.replace(manifest.head, replay_examples=len(rows))
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
        return _TEXT_SAMPLE
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
