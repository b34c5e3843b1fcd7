"""``edgeft export``: a backbone to a bundle (its tensor and fine-tuning options included); torch and
the exporter are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Any

from edgeft.cli.common import _add_data_args, _ProgressBars
from edgeft.cli.flags import add_flags, config_from_args, given
from edgeft.config import (
    FUSED_LR,
    TEXT_FUSED_LR,
    ExportConfig,
    FineTuneConfig,
    ImagePreprocessing,
    Pooling,
    TensorPreprocessing,
    TrainConfig,
    default_train_config,
)
from edgeft.errors import ConfigError
from edgeft.fields import EXPORT
from edgeft.signing import UnsignedBundleWarning, sign_bundle

_FT = "ft-"  # the prefix of the fine-tuning flags: --ft-lr is FineTuneConfig.lr
_LR_NOTE = f"; {FUSED_LR} with --device-trainable-blocks, {TEXT_FUSED_LR} for a text encoder's whole layers"


def _export_parser(commands: Any) -> None:
    p = commands.add_parser(
        "export",
        help="export a text model folder, a packaged vision model or an ONNX file to a bundle",
        description="Export a backbone to a bundle: ONNX backbone (FP32 or INT8, measured), head training "
        "artifacts, tokenizer or image preprocessing, checksummed manifest. --model is a Hugging Face / "
        "sentence-transformers folder, a packaged vision model (efficientnet-lite0), or an .onnx file "
        "(with --feature-output). With --train-data the head ships trained on a training split; the "
        "validation split measures it; every example measures INT8 against FP32.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="model folder (config.json, weights, tokenizer.json), efficientnet-lite0, a .onnx file, or cnn1d (a small "
        "1-D CNN for float tensors, trained here on --train-data) (required)",
    )
    p.add_argument("--output", required=True, help="bundle folder to write (required)")
    p.add_argument(
        "--train-data",
        help="server examples: .csv/.jsonl texts, a folder with one image sub-folder per class, .npz with arrays X "
        "(texts, uint8 images or float tensors) and y, or a .csv of number columns and a label column (tabular rows) "
        "(default: none, the head ships untrained)",
    )
    p.add_argument("--labels", help="comma-separated label set, in order (default: sorted labels of --train-data)")
    _add_data_args(p)
    add_flags(p, ExportConfig, EXPORT)
    p.add_argument(
        "--max-quality-loss",
        type=float,
        default=100 * ExportConfig.max_quality_loss,
        help="accuracy points INT8 may lose against FP32: on the validation split for an INT8 mode, a 95%% upper bound over "
        "every server example for auto (default: %(default)s)",
    )
    _add_backbone_args(p)
    _add_tensor_args(p)
    _add_fine_tuning_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --output (default: off)")
    p.add_argument(
        "--sign-key",
        default=None,
        help="sign the bundle with this private key (`edgeft keys create`) (default: $EDGEFT_SIGNING_KEY, else unsigned)",
    )
    add_flags(p, TrainConfig, EXPORT, leave_unset=True, notes={"lr": _LR_NOTE})  # unset: default_train_config's
    p.set_defaults(run=_run_export)


def _add_backbone_args(p: argparse.ArgumentParser) -> None:
    onnx_file = p.add_argument_group("ONNX backbone file (--model x.onnx)")
    onnx_file.add_argument(
        "--feature-output", help="the graph output holding the features (default: none; required for a .onnx --model)"
    )
    onnx_file.add_argument(
        "--pooling",
        choices=[v.value for v in Pooling],
        default=Pooling.NONE.value,
        help="how a (batch, tokens, hidden) output becomes one vector: mean over the attention mask, or the first token (default: %(default)s)",
    )
    onnx_file.add_argument("--tokenizer", help="tokenizer.json of a text backbone (default: none, the backbone reads images)")
    image = p.add_argument_group("image preprocessing (ONNX image backbones; packaged vision models bring their own)")
    add_flags(image, ImagePreprocessing, EXPORT)


def _add_fine_tuning_args(p: argparse.ArgumentParser) -> None:
    tune = p.add_argument_group("server-side fine-tuning of the backbone, before export (text folders and efficientnet-lite0)")
    tune.add_argument(
        "--finetune", action="store_true", help="fine-tune the backbone in torch on --train-data first (default: off)"
    )
    add_flags(tune, FineTuneConfig, EXPORT, prefix=_FT)
    tune.add_argument(
        "--tune",
        type=int,
        default=0,
        metavar="N",
        help="Optuna trials over lr, weight decay, dropout and unfrozen depth before fine-tuning (default: %(default)s)",
    )
    tune.add_argument(
        "--finetune-log", help="folder for finetune.json and finetune.png (default: OUTPUT-finetune beside the bundle)"
    )


def _add_tensor_args(p: argparse.ArgumentParser) -> None:
    tensor = p.add_argument_group("float tensors: sensor windows, audio features, tabular rows (cnn1d, or --tensor)")
    tensor.add_argument(
        "--tensor",
        action="store_true",
        help="the .onnx --model reads float tensors; cnn1d and --tensor-shape imply it (default: off)",
    )
    add_flags(tensor, TensorPreprocessing, EXPORT)


def _tensor_preprocessing(args: argparse.Namespace) -> TensorPreprocessing | None:
    """The tensor options as TensorPreprocessing, or None where --model is no tensor backbone."""
    from export.adapters.tensor import DEFAULT_NET

    if not (args.tensor or args.shape or args.model == DEFAULT_NET):
        return None
    return config_from_args(args, TensorPreprocessing, EXPORT)


def _fine_tuning(args: argparse.Namespace) -> Any:
    """The --finetune / --ft-* / --tune options as export.FineTuning, or None when not asked for."""
    from export import FineTuning

    if not (args.finetune or args.tune):
        _refuse_unused_fine_tuning_flags(args)
        return None
    try:
        config = config_from_args(args, FineTuneConfig, EXPORT, prefix=_FT)
    except ConfigError as e:  # its field names are the --ft-* options' without the prefix
        raise ConfigError(f"fine-tuning (--ft-* options): {e}") from e
    if args.tune < 0:
        raise ConfigError(f"--tune must be >= 0 trials, got {args.tune}")
    return FineTuning(config, trials=args.tune, log_dir=args.finetune_log or f"{args.output.rstrip('/')}-finetune")


def _refuse_unused_fine_tuning_flags(args: argparse.Namespace) -> None:
    """--ft-* options without --finetune or --tune would be dropped without a word: say so instead."""
    defaults = FineTuneConfig()
    changed = [
        f"--{_FT}{name.replace('_', '-')}"
        for name, value in given(args, FineTuneConfig, EXPORT, prefix=_FT).items()
        if value != getattr(defaults, name)
    ]
    if changed:
        raise ConfigError(
            f"{', '.join(changed)} set fine-tuning, which runs only with --finetune (or --tune): add it, or leave them "
            "out. (cnn1d trains from scratch with its own settings unless --finetune gives these.)"
        )


def _accuracy_fraction(points: float) -> float:
    """--max-quality-loss counts accuracy points; ExportConfig takes a fraction. Checked here, in the user's unit."""
    if not 0 <= points <= 100:
        raise ConfigError(f"--max-quality-loss must be between 0 and 100 accuracy points, got {points:g}")
    return points / 100


def _run_export(args: argparse.Namespace) -> None:
    config = config_from_args(args, ExportConfig, EXPORT, max_quality_loss=_accuracy_fraction(args.max_quality_loss))
    with _ProgressBars() as bars, warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsignedBundleWarning)  # the exporter loads its bundle before it can be signed
        manifest = _export(args, config, bars)
    key = args.sign_key or os.environ.get("EDGEFT_SIGNING_KEY")
    signed = f", signed with key {sign_bundle(args.output, key).key_id}" if key else ", unsigned"
    m = manifest.metrics
    quality = (
        (
            f"; INT8 vs FP32: {100 * m['int8_identical_predictions']:.0f}% identical predictions on "
            f"{m['int8_agreement_examples']} server examples"
        )
        if "int8_identical_predictions" in m
        else ""
    )
    if "validation_accuracy_int8" in m:
        quality += (
            f", accuracy {m['validation_accuracy_int8']:.3f} vs {m['validation_accuracy_fp32']:.3f} on "
            f"{m['validation_examples']} validation examples"
        )
    print(
        f"wrote {args.output}: {manifest.name}@{manifest.version}, {len(manifest.labels)} labels, "
        f"{manifest.backbone.precision} backbone, head {'trained' if manifest.head.trained else 'untrained'}{quality}{signed}"
    )
    print(f"precision (--quantize {m['quantization']['requested']}): {m['quantization']['reason']}")


def _export(args: argparse.Namespace, config: ExportConfig, progress: Any) -> Any:
    """The options as export_bundle's request; which adapter takes --model is the exporter's choice."""
    from export import BackboneOptions, ServerData, adapter_for, export_bundle

    preprocessing = config_from_args(args, ImagePreprocessing, EXPORT)
    backbone = BackboneOptions(
        feature_output=args.feature_output,
        pooling=args.pooling,
        tokenizer=args.tokenizer,
        # Left at its defaults, the preprocessing is the adapter's (a packaged model brings its own).
        preprocessing=None if preprocessing == ImagePreprocessing() else preprocessing,
        tensor=_tensor_preprocessing(args),
    )
    data = ServerData(
        path=args.train_data,
        label_set=args.labels.split(",") if args.labels else None,
        text_column=args.text_column,
        label_column=args.label_column,
    )
    adapter = adapter_for(args.model, backbone)
    # The flags set override the defaults a bundle of this kind ships (a text encoder's layers take a smaller step).
    # The shipped training decays weights and splits as the export did, unless --weight-decay etc. say otherwise.
    own = {"weight_decay": config.weight_decay, "validation_fraction": config.validation_fraction}
    train_config = default_train_config(config, adapter.modality).replace(**own, **given(args, TrainConfig, EXPORT))
    return export_bundle(
        adapter,
        args.output,
        data=data,
        config=config,
        train_config=train_config,
        fine_tuning=_fine_tuning(args),
        overwrite=args.overwrite,
        progress=progress,
    )
