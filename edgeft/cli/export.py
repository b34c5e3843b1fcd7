"""``edgeft export``: a backbone to a bundle (its tensor and fine-tuning options included); torch and
the exporter are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Any

from edgeft.cli.common import (
    EXPORT_DEFAULTS,
    TRAIN_DEFAULTS,
    _add_data_args,
    _add_train_args,
    _csv,
    _numbers,
    _ProgressBars,
    _train_overrides,
)
from edgeft.config import (
    ChannelOrder,
    ExportConfig,
    FineTuneConfig,
    HeadKind,
    ImagePreprocessing,
    Layout,
    LengthPolicy,
    Pooling,
    Quantization,
    Schedule,
    TensorPreprocessing,
    default_train_config,
)
from edgeft.errors import ConfigError
from edgeft.signing import UnsignedBundleWarning, sign_bundle


def _export_parser(commands: Any) -> None:
    d = EXPORT_DEFAULTS
    img = ImagePreprocessing()
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
    p.add_argument("--name", default=d.name, help="bundle name (default: %(default)s)")
    p.add_argument("--version", dest="bundle_version", default=d.version, help="bundle version (default: %(default)s)")
    p.add_argument("--base-model", default=d.base_model, help="base model's name for the manifest (default: the folder's name)")
    p.add_argument("--license", default=d.license, help="base model's licence (default: %(default)s)")
    p.add_argument(
        "--quantize",
        choices=[q.value for q in Quantization],
        default=d.quantization.value,
        help="backbone precision; auto measures none, int8-dynamic and int8-static on --train-data and ships the smallest "
        "within --max-quality-loss; int8-static calibrates on --train-data; the head is never quantized (default: %(default)s)",
    )
    p.add_argument(
        "--validation-fraction",
        type=float,
        default=d.validation_fraction,
        help="share of --train-data held out to measure the head and INT8 against FP32 (default: %(default)s)",
    )
    p.add_argument(
        "--max-quality-loss",
        type=float,
        default=100 * d.max_quality_loss,
        help="accuracy points INT8 may lose against FP32: on the validation split for an INT8 mode, a 95%% upper bound over "
        "every server example for auto (default: %(default)s)",
    )
    p.add_argument(
        "--accept-quality-loss",
        action="store_true",
        help="ship the INT8 mode given to --quantize even when it loses more than --max-quality-loss (default: off)",
    )
    p.add_argument(
        "--max-length", type=int, default=d.max_length, help="tokens per text, longer text is truncated (default: %(default)s)"
    )
    p.add_argument("--head", choices=[h.value for h in HeadKind], default=d.head.value, help="head type (default: %(default)s)")
    p.add_argument("--hidden-size", type=int, default=d.hidden_size, help="hidden units of an mlp head (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay (default: %(default)s)")
    p.add_argument(
        "--device-trainable-blocks",
        type=int,
        default=d.device_trainable_blocks,
        metavar="N",
        help="the last N backbone blocks train on the device with the head, in FP32 (fused training artifacts; "
        "efficientnet-lite0 and BERT-like text encoders; in Python also sequential CNNs); 0 trains the head "
        "alone (default: %(default)s)",
    )
    p.add_argument(
        "--device-lora",
        type=int,
        default=d.device_lora_rank,
        metavar="RANK",
        dest="device_lora_rank",
        help="with --device-trainable-blocks on a text encoder: rank-RANK LoRA adapters on those blocks' attention "
        "projections train instead of the whole blocks; 0: the blocks train whole (default: %(default)s)",
    )
    p.add_argument(
        "--replay-per-class",
        type=int,
        default=d.replay_per_class,
        metavar="N",
        help="server examples per label whose features ship for replay on devices; 0 ships none (default: %(default)s)",
    )
    p.add_argument(
        "--spare-labels",
        type=int,
        default=d.spare_labels,
        metavar="K",
        help="output slots reserved for labels devices add (default: %(default)s)",
    )
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
    image.add_argument("--image-size", default=_csv(img.size), help="height,width the backbone expects (default: %(default)s)")
    image.add_argument("--pixel-mean", default=_csv(img.mean), help="per-channel offset on 0..255 pixels (default: %(default)s)")
    image.add_argument("--pixel-std", default=_csv(img.std), help="per-channel divisor after the offset (default: %(default)s)")
    image.add_argument(
        "--channel-order",
        choices=[c.value for c in ChannelOrder],
        default=img.channel_order.value,
        help="colour order the backbone was trained on (default: %(default)s)",
    )
    image.add_argument(
        "--layout",
        choices=[v.value for v in Layout],
        default=img.layout.value,
        help="axis order of the backbone's input (default: %(default)s)",
    )
    _add_tensor_args(p)
    f = FineTuneConfig()
    tune = p.add_argument_group("server-side fine-tuning of the backbone, before export (text folders and efficientnet-lite0)")
    tune.add_argument(
        "--finetune", action="store_true", help="fine-tune the backbone in torch on --train-data first (default: off)"
    )
    tune.add_argument("--ft-lr", type=float, default=f.lr, help="peak learning rate of AdamW (default: %(default)s)")
    tune.add_argument("--ft-batch-size", type=int, default=f.batch_size, help="examples per step (default: %(default)s)")
    tune.add_argument("--ft-epochs", type=int, default=f.epochs, help="passes over the training split (default: %(default)s)")
    tune.add_argument("--ft-dropout", type=float, default=f.dropout, help="dropout on the pooled features (default: %(default)s)")
    tune.add_argument("--ft-weight-decay", type=float, default=f.weight_decay, help="AdamW weight decay (default: %(default)s)")
    tune.add_argument(
        "--ft-warmup-fraction",
        type=float,
        default=f.warmup_fraction,
        help="share of steps warming the LR up (default: %(default)s)",
    )
    tune.add_argument(
        "--ft-schedule",
        choices=[v.value for v in Schedule],
        default=f.schedule.value,
        help="LR decay after the warm-up (default: %(default)s)",
    )
    tune.add_argument(
        "--ft-trainable-blocks",
        type=int,
        default=f.trainable_blocks,
        help="blocks trained, from the top; 0 freezes the whole backbone (default: all)",
    )
    tune.add_argument(
        "--ft-unfreeze-every",
        type=int,
        default=f.unfreeze_every,
        help="gradual unfreezing: one more block every K epochs, 0 is off (default: %(default)s)",
    )
    tune.add_argument(
        "--ft-layer-lr-decay",
        type=float,
        default=f.layer_lr_decay,
        help="LR factor per block below the top (default: %(default)s)",
    )
    tune.add_argument(
        "--ft-validation-fraction",
        type=float,
        default=f.validation_fraction,
        help="share held out for early stopping and metrics (default: %(default)s)",
    )
    tune.add_argument(
        "--ft-patience",
        type=int,
        default=f.patience,
        help="epochs without a lower validation loss before stopping (default: off)",
    )
    tune.add_argument("--ft-seed", type=int, default=f.seed, help="torch, split and shuffling seed (default: %(default)s)")
    tune.add_argument(
        "--dry-run", action="store_true", help="fine-tune one epoch on two batches only, to check the pipeline (default: off)"
    )
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
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --output (default: off)")
    p.add_argument(
        "--sign-key",
        default=None,
        help="sign the bundle with this private key (`edgeft keys create`) (default: $EDGEFT_SIGNING_KEY, else unsigned)",
    )
    _add_train_args(p, TRAIN_DEFAULTS)
    p.set_defaults(run=_run_export)


def _add_tensor_args(p: argparse.ArgumentParser) -> None:
    t = TensorPreprocessing()
    tensor = p.add_argument_group("float tensors: sensor windows, audio features, tabular rows (cnn1d, or --tensor)")
    tensor.add_argument(
        "--tensor",
        action="store_true",
        help="the .onnx --model reads float tensors; cnn1d and --tensor-shape imply it (default: off)",
    )
    tensor.add_argument(
        "--tensor-shape", help="one example's shape: CHANNELS,STEPS for a window, FEATURES for a row (default: the data's)"
    )
    tensor.add_argument(
        "--length-policy",
        choices=[v.value for v in LengthPolicy],
        default=t.length_policy.value,
        help="a window of another length: exact refuses it, crop_or_pad keeps its centre or pads both ends with the "
        "channel's server mean (default: %(default)s)",
    )
    tensor.add_argument(
        "--no-standardise",
        dest="standardise",
        action="store_false",
        help="ship mean 0 and std 1 instead of the server data's per-channel statistics (default: standardise)",
    )


def _tensor_preprocessing(args: argparse.Namespace) -> TensorPreprocessing | None:
    """The tensor options as TensorPreprocessing, or None where --model is no tensor backbone."""
    from export.adapters.tensor import DEFAULT_NET

    if not (args.tensor or args.tensor_shape or args.model == DEFAULT_NET):
        return None
    shape = _numbers(args.tensor_shape, int, "--tensor-shape") if args.tensor_shape else None
    return TensorPreprocessing(shape=shape, length_policy=args.length_policy, standardise=args.standardise)


def _fine_tuning(args: argparse.Namespace) -> Any:
    """The --finetune / --ft-* / --tune options as export.FineTuning, or None when not asked for."""
    from export import FineTuning

    if not (args.finetune or args.tune):
        return None
    try:
        config = FineTuneConfig(
            lr=args.ft_lr,
            batch_size=args.ft_batch_size,
            epochs=args.ft_epochs,
            dropout=args.ft_dropout,
            weight_decay=args.ft_weight_decay,
            warmup_fraction=args.ft_warmup_fraction,
            schedule=args.ft_schedule,
            trainable_blocks=args.ft_trainable_blocks,
            unfreeze_every=args.ft_unfreeze_every,
            layer_lr_decay=args.ft_layer_lr_decay,
            validation_fraction=args.ft_validation_fraction,
            patience=args.ft_patience,
            seed=args.ft_seed,
            dry_run=args.dry_run,
        )
    except ConfigError as e:  # its field names are the --ft-* options' without the prefix
        raise ConfigError(f"fine-tuning (--ft-* options): {e}") from e
    if args.tune < 0:
        raise ConfigError(f"--tune must be >= 0 trials, got {args.tune}")
    return FineTuning(config, trials=args.tune, log_dir=args.finetune_log or f"{args.output.rstrip('/')}-finetune")


def _accuracy_fraction(points: float) -> float:
    """--max-quality-loss counts accuracy points; ExportConfig takes a fraction. Checked here, in the user's unit."""
    if not 0 <= points <= 100:
        raise ConfigError(f"--max-quality-loss must be between 0 and 100 accuracy points, got {points:g}")
    return points / 100


def _run_export(args: argparse.Namespace) -> None:
    config = ExportConfig(
        name=args.name,
        version=args.bundle_version,
        base_model=args.base_model,
        license=args.license,
        quantization=args.quantize,
        max_length=args.max_length,
        head=args.head,
        hidden_size=args.hidden_size,
        weight_decay=args.weight_decay,
        validation_fraction=args.validation_fraction,
        max_quality_loss=_accuracy_fraction(args.max_quality_loss),
        accept_quality_loss=args.accept_quality_loss,
        device_trainable_blocks=args.device_trainable_blocks,
        device_lora_rank=args.device_lora_rank,
        replay_per_class=args.replay_per_class,
        spare_labels=args.spare_labels,
    )
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

    preprocessing = ImagePreprocessing(
        size=_numbers(args.image_size, int, "--image-size"),
        mean=_numbers(args.pixel_mean, float, "--pixel-mean"),
        std=_numbers(args.pixel_std, float, "--pixel-std"),
        channel_order=args.channel_order,
        layout=args.layout,
    )
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
    train_config = default_train_config(config, adapter.modality).replace(**_train_overrides(args))
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
