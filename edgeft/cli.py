"""The ``edgeft`` command line. Each subcommand parses its arguments and calls
one library function; heavy imports (torch, optimum) happen only in ``export``,
and FastAPI/uvicorn only in ``registry`` and ``serve``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, final

from edgeft import __version__, cli_keys
from edgeft.config import (
    FUSED_LR,
    TEXT_FUSED_LR,
    Accept,
    ChannelOrder,
    DriftConfig,
    Engine,
    ExportConfig,
    FineTuneConfig,
    HeadKind,
    ImagePreprocessing,
    Layout,
    LengthPolicy,
    Metric,
    Pooling,
    Quantization,
    RuntimeConfig,
    Schedule,
    TensorPreprocessing,
    TrainConfig,
    default_train_config,
)
from edgeft.errors import ConfigError, EdgeftError
from edgeft.signing import UnsignedBundleWarning, sign_bundle, trust_from_env

TRAIN_DEFAULTS = TrainConfig()
EXPORT_DEFAULTS = ExportConfig()
RUNTIME_DEFAULTS = RuntimeConfig()
DRIFT_EXIT_CODE = 3  # `edgeft drift` found drift: scripts tell it apart from errors (1) and usage errors (2)
DEVICE_TRAIN_KEYS = (
    "weight_decay",
    "validation_fraction",
    "patience",
    "metric",
    "balanced_sampling",
    "max_seconds",
    "accept",
    "replay_ratio",
    "l2sp",
    "max_label_loss",
    "forgetting_level",
)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        code = args.run(args)
    except EdgeftError as e:
        print(f"edgeft {args.command}: error: {e}", file=sys.stderr)
        return 1
    return code or 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeft", description="Export a model once, personalize its head on every device.")
    parser.add_argument("--version", action="version", version=f"edgeft {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for build in (
        _export_parser,
        _inspect_parser,
        _personalize_parser,
        _predict_parser,
        _evaluate_parser,
        _rollback_parser,
        _drift_parser,
        _registry_parser,
        _push_parser,
        _pull_parser,
        _serve_parser,
        _doctor_parser,
        _fleet_parser,
    ):
        build(commands)
    cli_keys.add_parsers(commands)
    return parser


def _add_data_args(p: argparse.ArgumentParser, *, labels: bool = True) -> None:
    p.add_argument("--text-column", default="text", help="column holding the text (default: %(default)s)")
    if labels:
        p.add_argument("--label-column", default="label", help="column holding the label (default: %(default)s)")


def _add_train_args(p: argparse.ArgumentParser, defaults: TrainConfig | None) -> None:
    """Training flags; unset flags keep ``defaults`` (export) or, with None, the bundle's own."""
    d = defaults or TRAIN_DEFAULTS
    shown = (lambda v: "the bundle's") if defaults is None else (lambda v: v)
    lr_note = (
        ""
        if defaults is None
        else (f"; {FUSED_LR} with --device-trainable-blocks, {TEXT_FUSED_LR} for a text encoder's whole layers")
    )
    p.add_argument("--epochs", type=int, help=f"passes over the data (default: {shown(d.epochs)})")
    p.add_argument("--lr", type=float, help=f"peak learning rate of AdamW (default: {shown(d.lr)}{lr_note})")
    p.add_argument("--batch-size", type=int, help=f"examples per step (default: {shown(d.batch_size)})")
    p.add_argument(
        "--schedule",
        choices=[s.value for s in Schedule],
        help=f"learning-rate schedule after warm-up (default: {shown(d.schedule.value)})",
    )
    p.add_argument("--warmup-steps", type=int, help=f"steps of linear warm-up (default: {shown(d.warmup_steps)})")
    p.add_argument("--seed", type=int, help=f"shuffling seed (default: {shown(d.seed)})")


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training flags given on the command line (unset ones are None and left out)."""
    keys = ("epochs", "lr", "batch_size", "schedule", "warmup_steps", "seed", *DEVICE_TRAIN_KEYS)
    return {k: v for k in keys if (v := getattr(args, k, None)) is not None}


def _add_device_train_args(p: argparse.ArgumentParser) -> None:
    """Controls of on-device training; unset flags keep the bundle's (or TrainConfig's) defaults."""
    d = TRAIN_DEFAULTS
    p.add_argument("--weight-decay", type=float, help="AdamW's decoupled weight decay (default: the bundle's)")
    p.add_argument(
        "--validation-fraction",
        type=float,
        help=f"share of each class held out for early stopping and the acceptance check (default: {d.validation_fraction})",
    )
    p.add_argument("--patience", type=int, help="stop after this many epochs without improvement of --metric (default: off)")
    p.add_argument(
        "--metric",
        choices=[m.value for m in Metric],
        help=f"what early stopping and acceptance compare (default: {d.metric.value})",
    )
    p.add_argument(
        "--balanced-sampling",
        action="store_true",
        default=None,
        help="draw examples with probability 1/class count, for skewed data (default: off)",
    )
    p.add_argument("--max-seconds", type=float, help="time budget of the whole run (default: none)")
    p.add_argument(
        "--accept",
        choices=[a.value for a in Accept],
        help=f"when the new head replaces the current one (default: {d.accept.value})",
    )
    p.add_argument(
        "--replay-ratio",
        type=float,
        help=f"replay of the bundle's server features: every label topped up to this times the user's mean examples per label; 0 is off (default: {d.replay_ratio})",
    )
    p.add_argument(
        "--l2sp",
        type=float,
        help="strength of the pull toward the shipped head's weights (L2-SP); 0 is off (default: the bundle's, off)",
    )
    p.add_argument(
        "--max-label-loss",
        type=float,
        help=f"recall (0..1) a label may lose on the guard or validation rows before the guard counts it lost (default: {d.max_label_loss})",
    )
    p.add_argument(
        "--forgetting-level",
        type=float,
        help=f"... and only where chance explains the loss with probability below this (McNemar's exact test; below 0.5 one row never counts; default: {d.forgetting_level})",
    )


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    d = RUNTIME_DEFAULTS
    p.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        default=d.engine.value,
        help="head training engine: ort, step (plain onnxruntime), numpy, or auto = ort where installed, else step (default: %(default)s)",
    )
    p.add_argument(
        "--providers",
        default=",".join(d.providers),
        help="backbone execution providers in order, e.g. cuda,cpu; missing ones fall back (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=d.intra_op_threads,
        help="intra-op threads of the backbone, 0 = ORT's choice (default: %(default)s)",
    )
    p.add_argument(
        "--inter-op-threads",
        type=int,
        default=d.inter_op_threads,
        help="inter-op threads, 0 = ORT's choice (default: %(default)s)",
    )
    p.add_argument(
        "--cache-dir", default=d.cache_dir, help="folder that keeps backbone features between runs (default: a temporary folder)"
    )
    p.add_argument(
        "--cache-memory-mb",
        type=float,
        default=d.cache_memory_mb,
        help="features kept in memory before spilling to disk (default: %(default)s)",
    )
    _add_trust_arg(p)


def _add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust", default=None, help="trust file: load signed bundles only, by its keys (default: $EDGEFT_TRUST, else none)"
    )


def _port(text: str) -> int:
    """A TCP port, 1-65535: anything else is a usage error naming the option (never a random port bound silently)."""
    port = int(text) if text.isdigit() else 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port; give a number from 1 to 65535")
    return port


def _runtime(args: argparse.Namespace) -> RuntimeConfig:
    return RuntimeConfig(
        engine=args.engine,
        providers=tuple(args.providers.split(",")),
        intra_op_threads=args.threads,
        inter_op_threads=args.inter_op_threads,
        cache_dir=args.cache_dir,
        cache_memory_mb=args.cache_memory_mb,
        trust=trust_from_env(args.trust),
    )


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
        "--tensor", action="store_true", help="the .onnx --model reads float tensors (implied by cnn1d and --tensor-shape)"
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


def _csv(values: tuple) -> str:
    return ",".join(f"{v:g}" for v in values)


def _numbers(text: str, kind: type, option: str) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated {kind.__name__} values, got {text!r}") from None


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


def _inspect_parser(commands: Any) -> None:
    p = commands.add_parser("inspect", help="print a bundle's manifest as a table")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--json", action="store_true", help="print the raw manifest JSON instead")
    p.add_argument("--trust", default=None, help="trust file to check the signature against (default: $EDGEFT_TRUST, else none)")
    p.set_defaults(run=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> None:
    from edgeft.bundle import Bundle
    from edgeft.layout import SIGNATURE

    trust = trust_from_env(args.trust)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsignedBundleWarning)  # the signature row says so
        bundle = Bundle.load(args.bundle, trust=trust)
    m = bundle.manifest
    signed = json.loads(bundle.file(SIGNATURE).read_text())["key_id"] if bundle.file(SIGNATURE).is_file() else None
    signature = (
        "unsigned"
        if signed is None
        else f"key {signed}, " + ("verified against " + trust if trust else "not checked (no trust file)")
    )
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
        return
    rows = [
        ("bundle", f"{m.name}@{m.version} (format {m.format_version}, edgeft {m.edgeft_version})"),
        ("created", m.created),
        ("signature", signature),
        ("base model", f"{m.base_model.get('name')} ({m.base_model.get('license')})"),
        ("task", m.task),
        ("labels", ", ".join(m.labels)),
        ("input", _describe_input(m.input)),
        ("backbone", f"{m.backbone.precision}, {m.backbone.feature_size} features from {m.backbone.output_name!r}"),
        (
            "head",
            f"{m.head.kind} {m.head.in_features}->{m.head.out_features}, {m.head.optimizer} (wd {m.head.weight_decay}), {'trained' if m.head.trained else 'untrained'}"
            + (
                f", trains with the last {m.head.backbone_blocks} backbone block(s) (FP32) on the frozen part's "
                f"{'x'.join(map(str, m.backbone.intermediate_shape))} activation "
                f"({_size(4 * m.backbone.feature_size)} cached per example)"
                if m.head.backbone_blocks
                else ""
            )
            + (f", through rank-{m.head.lora_rank} LoRA adapters on their attention" if m.head.lora_rank else ""),
        ),
        ("trainable", ", ".join(m.head.trainable)),
        ("device defaults", ", ".join(f"{k}={v}" for k, v in m.training.items())),
        *((f"metric {k}", _size(v) if "bytes" in k else _fmt(v)) for k, v in m.metrics.items()),
        *((f"file {name}", f"{_size(e.size):>10}  sha256 {e.sha256[:16]}…") for name, e in m.files.items()),
        ("total size", _size(sum(e.size for e in m.files.values()))),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _describe_input(spec: Any) -> str:
    if spec.modality == "tensor":
        if len(spec.tensor_shape) == 1:
            shape = f"rows of {spec.tensor_shape[0]} features"
        else:
            shape = (
                f"windows of {spec.tensor_shape[0]} channels x {spec.tensor_shape[1]} steps (other lengths: {spec.length_policy})"
            )
        return f"float tensor, {shape}, standardised per channel with the server's mean and std, input {spec.input_names[0]}"
    if spec.modality == "image":
        return (
            f"image, {spec.image_size[0]}x{spec.image_size[1]} {spec.channel_order} {spec.layout}, "
            f"(x - {_csv(tuple(spec.pixel_mean))}) / {_csv(tuple(spec.pixel_std))}, input {spec.input_names[0]}"
        )
    return f"{spec.modality}, max {spec.max_length} tokens, inputs {', '.join(spec.input_names)}"


_LABELLED_FILES = (
    ".csv or .jsonl texts, .npz with X (texts, uint8 images or float tensors) and y, or a .csv of number columns and "
    "a label column (tabular rows)"
)


def _personalize_parser(commands: Any) -> None:
    p = commands.add_parser("personalize", help="train the head on local examples and save the state")
    p.add_argument("model", help="bundle folder, or a state folder to continue from")
    p.add_argument("--data", required=True, help=f"labelled examples: {_LABELLED_FILES}")
    p.add_argument("--state", required=True, help="folder to save the personalized state in")
    p.add_argument(
        "--continue",
        dest="resume",
        action="store_true",
        help="continue from the current head (partial_fit) instead of the shipped one",
    )
    p.add_argument(
        "--new-labels",
        choices=["refuse", "add"],
        default="refuse",
        help="labels the bundle lacks: refuse, or add them in spare output slots (default: %(default)s)",
    )
    _add_data_args(p)
    _add_train_args(p, None)
    _add_device_train_args(p)
    _add_runtime_args(p)
    p.set_defaults(run=_run_personalize)


def _run_personalize(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    texts, labels = read_examples(args.data, text_column=args.text_column, label_column=args.label_column)
    personalizer = Personalizer.load(args.model, runtime=_runtime(args))
    train = personalizer.partial_fit if args.resume else personalizer.fit
    with _ProgressBars() as bars:
        train(texts, labels, progress=bars, new_labels=args.new_labels, **_train_overrides(args))
    personalizer.save(args.state)
    r = personalizer.report_
    print(f"{'accepted' if r.accepted else 'rejected'}: {r.reason}")
    if r.verdicts:
        print(
            "recall per label (current -> new): "
            + ", ".join(
                f"{v['label']} ({v['source']}) {v['current']:.2f} -> {v['new']:.2f} {'kept' if v['kept'] else 'LOST'}"
                for v in r.verdicts
            )
        )
    if r.added_labels:
        print(f"added label(s): {', '.join(r.added_labels)}")
    print(
        f"head version {r.version}; {r.examples} examples, {r.epochs} epochs ({r.stopped}), "
        f"{r.feature_seconds:.2f}s features + {r.train_seconds:.2f}s training on {r.engine}/{r.provider}; "
        f"state saved to {args.state}"
    )


def _predict_parser(commands: Any) -> None:
    p = commands.add_parser("predict", help="predict labels for texts")
    p.add_argument("model", help="bundle or state folder")
    p.add_argument("--data", required=True, help="examples (.csv, .jsonl, .npz with X, or .npy); labels are not needed")
    p.add_argument("--proba", action="store_true", help="also print each label's probability")
    _add_data_args(p, labels=False)
    _add_trust_arg(p)
    p.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    texts, _ = read_examples(args.data, text_column=args.text_column, label_column=None)
    personalizer = Personalizer.load(args.model, runtime=RuntimeConfig(trust=trust_from_env(args.trust)))
    proba = personalizer.predict_proba(texts)
    labels = personalizer.labels
    for i, (example, p) in enumerate(zip(texts, proba)):
        row = {"text": example[:80]} if isinstance(example, str) else {"index": i}
        row["label"] = labels[int(p.argmax())]
        if args.proba:
            row["proba"] = {label: round(float(v), 4) for label, v in zip(labels, p)}
        print(json.dumps(row))


def _evaluate_parser(commands: Any) -> None:
    p = commands.add_parser("evaluate", help="accuracy, macro P/R/F1 and confusion matrix on labelled texts")
    p.add_argument("model", help="bundle or state folder")
    p.add_argument("--data", required=True, help=f"labelled examples: {_LABELLED_FILES}")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    _add_data_args(p)
    _add_trust_arg(p)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    texts, labels = read_examples(args.data, text_column=args.text_column, label_column=args.label_column)
    report = Personalizer.load(args.model, runtime=RuntimeConfig(trust=trust_from_env(args.trust))).evaluate(texts, labels)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"examples {report['n']}  accuracy {report['accuracy']:.4f}  macro P {report['macro_precision']:.4f}  "
        f"R {report['macro_recall']:.4f}  F1 {report['macro_f1']:.4f}  loss {report['loss']:.4f}"
    )
    width = max(len(label) for label in report["labels"])
    corner = "true/pred"
    width = max(width, len(corner))
    print(f"{corner:<{width}}  " + " ".join(f"{label[:6]:>6}" for label in report["labels"]))
    for label, row in zip(report["labels"], report["confusion_matrix"]):
        print(f"{label:<{width}}  " + " ".join(f"{v:>6}" for v in row))


def _rollback_parser(commands: Any) -> None:
    p = commands.add_parser("rollback", help="make an earlier head version current in a saved state")
    p.add_argument("state", help="state folder written by personalize")
    p.add_argument("--to", type=int, required=True, help="head version to return to; 0 is the shipped head")
    _add_trust_arg(p)
    p.set_defaults(run=_run_rollback)


def _run_rollback(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer
    from device_runtime.state import STATE_FILE
    from edgeft.errors import StateError

    if not (Path(args.state) / STATE_FILE).is_file():
        raise StateError(
            f"{args.state} holds no saved state ({STATE_FILE}); rollback works on a state folder written by "
            "`edgeft personalize --state`, never on a bundle."
        )
    personalizer = Personalizer.load(args.state, runtime=RuntimeConfig(trust=trust_from_env(args.trust))).rollback(args.to)
    personalizer.save(args.state)
    print(
        f"head version {personalizer.current_version} is current; versions: "
        + ", ".join(str(v["version"]) for v in personalizer.versions)
    )


def _drift_parser(commands: Any) -> None:
    p = commands.add_parser(
        "drift",
        help="has local data moved away from the data the bundle was exported on?",
        description=f"Print the drift report as JSON. Exit status: 0 no drift, {DRIFT_EXIT_CODE} drift "
        "detected, 1 an error, 2 a usage error.",
    )
    p.add_argument("model", help="bundle or state folder")
    p.add_argument("--data", help="more local examples (.csv, .jsonl or .npz) to include (default: only what the state has seen)")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="cumulative feature shift counted as drift where the windowed test cannot run (default: %(default)s)",
    )
    p.add_argument(
        "--level", type=float, default=DriftConfig.level, help="the windowed test's false-alarm rate (default: %(default)s)"
    )
    p.add_argument("--window", type=int, default=DriftConfig.window, help="recent predictions tested (default: %(default)s)")
    _add_data_args(p, labels=False)
    _add_trust_arg(p)
    p.set_defaults(run=_run_drift)


def _run_drift(args: argparse.Namespace) -> int:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    drift = DriftConfig(window=args.window, level=args.level, min_window=min(DriftConfig.min_window, args.window), check_every=0)
    personalizer = Personalizer.load(args.model, drift=drift, runtime=RuntimeConfig(trust=trust_from_env(args.trust)))
    if args.data:
        texts, _ = read_examples(args.data, text_column=args.text_column, label_column=None)
        personalizer.predict_proba(texts)
    report = personalizer.drift_report(args.threshold)
    print(json.dumps(report, indent=2))
    return DRIFT_EXIT_CODE if report["drifted"] else 0


def _registry_parser(commands: Any) -> None:
    p = commands.add_parser(
        "registry",
        help="serve a bundle registry from a local folder",
        description="Serve bundles from --root. Publishing needs the bearer token in "
        "EDGEFT_REGISTRY_TOKEN; with EDGEFT_REGISTRY_READ_TOKEN set, reading needs a token too.",
    )
    p.add_argument("--root", required=True, help="folder holding the published bundles")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_port, default=8700, help="port to listen on, 1-65535 (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=int, default=None, help="largest upload accepted, in MB (default: 512)")
    p.set_defaults(run=_run_registry)


def _run_registry(args: argparse.Namespace) -> None:
    import uvicorn

    from edgeft.registry.app import create_app
    from edgeft.registry.settings import RegistrySettings

    limit = args.max_upload_mb * 1024 * 1024 if args.max_upload_mb else None
    settings = RegistrySettings.from_env(args.root, max_upload_bytes=limit)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


def _push_parser(commands: Any) -> None:
    p = commands.add_parser("push", help="publish a bundle folder as a new version on a registry")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--registry", required=True, help="registry URL, e.g. http://127.0.0.1:8700")
    p.add_argument("--token", default=None, help="publish token (default: $EDGEFT_REGISTRY_TOKEN)")
    p.set_defaults(run=_run_push)


def _run_push(args: argparse.Namespace) -> None:
    from edgeft.registry.client import push

    answer = push(args.bundle, args.registry, args.token or os.environ.get("EDGEFT_REGISTRY_TOKEN"))
    print(f"published {answer['name']}@{answer['version']}: {answer['files']} files, {_size(answer['bytes'])}")


def _pull_parser(commands: Any) -> None:
    p = commands.add_parser("pull", help="download and install a bundle from a registry, atomically")
    p.add_argument("ref", metavar="NAME[@VERSION]", help="bundle name, optionally @version (default: the latest)")
    p.add_argument("--registry", required=True, help="registry URL, e.g. http://127.0.0.1:8700")
    p.add_argument("--into", required=True, help="device folder; the bundle goes to INTO/NAME/VERSION")
    p.add_argument("--token", default=None, help="read token, if the registry needs one (default: $EDGEFT_REGISTRY_READ_TOKEN)")
    p.add_argument(
        "--trust",
        default=None,
        help="trust file: install only bundles signed by its keys, never an older "
        "version than the installed one (default: $EDGEFT_TRUST, else none: unsigned bundles install with a warning)",
    )
    p.set_defaults(run=_run_pull)


def _run_pull(args: argparse.Namespace) -> None:
    from edgeft.registry.client import pull

    result = pull(
        args.ref,
        args.registry,
        args.into,
        token=args.token or os.environ.get("EDGEFT_REGISTRY_READ_TOKEN"),
        trust=trust_from_env(args.trust),
    )
    resumed = f", resumed {len(result.resumed)} file(s)" if result.resumed else ""
    print(f"installed {result.name}@{result.version} at {result.path} ({_size(result.downloaded_bytes)} downloaded{resumed})")


def _serve_parser(commands: Any) -> None:
    p = commands.add_parser("serve", help="serve a bundle or personalized state over HTTP for apps on the device")
    p.add_argument("model", help="bundle folder, or a state folder saved by `personalize`")
    p.add_argument(
        "--state",
        default=None,
        help="folder for the personalized head and the examples database "
        "(default: the state folder given, or MODEL-state beside a bundle)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_port, default=8701, help="port to listen on, 1-65535 (default: %(default)s)")
    p.add_argument(
        "--retrain-on-drift",
        type=int,
        default=None,
        metavar="N",
        help="start a personalization job when drift is detected and N or more labelled examples were "
        "stored since the last job (default: off)",
    )
    _add_trust_arg(p)
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from device_runtime.service.app import create_app
    from device_runtime.service.served import load_served
    from device_runtime.service.settings import ServiceSettings
    from device_runtime.state import STATE_FILE
    from edgeft.errors import BundleError
    from edgeft.layout import MANIFEST

    if not any((Path(args.model) / name).is_file() for name in (STATE_FILE, MANIFEST)):
        raise BundleError(
            f"{args.model} is neither a bundle ({MANIFEST}) nor a saved state ({STATE_FILE}); "
            "pull a bundle with `edgeft pull` or save a state with `edgeft personalize`."
        )
    settings = ServiceSettings.for_model(
        args.model, state_dir=args.state, retrain_on_drift=args.retrain_on_drift, trust=trust_from_env(args.trust)
    )
    load_served(settings)  # refusals (trust policy, damaged state) as one typed error here, not a failed server startup
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


def _doctor_parser(commands: Any) -> None:
    p = commands.add_parser("doctor", help="print Python, platform, ONNX Runtime and training engine, for a bug report")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(run=_run_doctor)


def _run_doctor(args: argparse.Namespace) -> None:
    from device_runtime.doctor import diagnose

    diagnosis = diagnose()
    print(json.dumps(diagnosis.to_dict(), indent=2) if args.json else "\n".join(diagnosis.lines()))


def _fleet_parser(commands: Any) -> None:
    from fleet.config import FleetConfig, PrivacyConfig

    d, dp = FleetConfig(), PrivacyConfig()
    p = commands.add_parser(
        "fleet",
        help="federated learning of the head across many devices (Flower; the fleet extra)",
        description="Devices personalize the global head on their own data (the acceptance guard "
        "included) and send back only its arrays; the server averages them and writes a new bundle version.",
    )
    sub = p.add_subparsers(dest="fleet_command", metavar="FLEET_COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bundle", required=True, help="the bundle every device starts from (required)")
    runs = argparse.ArgumentParser(add_help=False)
    runs.add_argument("--output", required=True, help="folder of the new bundle version with the global head (required)")
    runs.add_argument("--bundle-version", help="the new version's name (default: the source's version + '+fleet.ROUNDS')")
    runs.add_argument("--overwrite", action="store_true", help="replace an existing --output (default: off)")
    runs.add_argument("--registry", help="push the written bundle to this registry URL (default: no push)")
    runs.add_argument("--token", help="the registry's publish token (default: $EDGEFT_REGISTRY_TOKEN)")
    runs.add_argument("--rounds", type=int, default=d.rounds, help="federated rounds (default: %(default)s)")
    fleet_training_arguments(runs)
    runs.add_argument(
        "--fraction-train",
        type=float,
        default=d.fraction_train,
        help="share of devices that train each round (default: %(default)s)",
    )
    runs.add_argument(
        "--fraction-evaluate",
        type=float,
        default=d.fraction_evaluate,
        help="share of devices that score the global head on their held-out split each round (default: %(default)s)",
    )
    runs.add_argument(
        "--min-clients",
        type=int,
        default=d.min_available_clients,
        help="devices that must be connected before a run starts (default: %(default)s)",
    )
    runs.add_argument(
        "--min-train-clients",
        type=int,
        default=d.min_train_clients,
        help="devices a round asks to train at least; a round goes on without those that drop out (default: %(default)s)",
    )
    runs.add_argument(
        "--min-evaluate-clients",
        type=int,
        default=d.min_evaluate_clients,
        help="devices a round asks to evaluate at least (default: %(default)s)",
    )
    runs.add_argument(
        "--round-timeout", type=float, default=d.round_timeout, help="seconds a round waits for replies (default: %(default)s)"
    )
    runs.add_argument(
        "--save-every",
        type=int,
        default=d.save_every,
        help="also write a bundle version every K rounds, to OUTPUT-roundK (default: %(default)s, only the last)",
    )
    runs.add_argument(
        "--dp",
        action="store_true",
        help="central differential privacy: clip each device's update, add Gaussian noise to the mean (default: off)",
    )
    runs.add_argument(
        "--dp-clip",
        type=float,
        default=dp.clipping_norm,
        help="with --dp: L2 bound of one device's head update (default: %(default)s)",
    )
    runs.add_argument(
        "--dp-noise",
        type=float,
        default=dp.noise_multiplier,
        help="with --dp: noise standard deviation, in units of clip / devices (default: %(default)s)",
    )
    runs.add_argument(
        "--dp-feature-norm",
        type=float,
        default=dp.feature_norm,
        help="with --dp: L2 bound of each feature vector in the devices' statistics (closed-form start) (default: %(default)s)",
    )
    runs.add_argument(
        "--dp-delta",
        type=float,
        default=dp.delta,
        help="with --dp: the delta of the statistics' (epsilon, delta) guarantee (default: %(default)s)",
    )
    runs.add_argument("--seed", type=int, default=d.seed, help="local training's shuffling seed (default: %(default)s)")
    s = sub.add_parser(
        "simulate",
        parents=[common, runs],
        help="simulate a fleet on this machine with Flower's simulation engine",
        description="Split --data into --devices simulated devices (labels drawn from Dirichlet(--alpha)), run "
        "the rounds with Flower's simulation engine, write the global head as a bundle version.",
    )
    s.add_argument(
        "--data", required=True, help="labelled examples to split across the devices: .csv/.jsonl texts or .npz (required)"
    )
    s.add_argument("--devices", type=int, default=10, help="simulated devices (default: %(default)s)")
    s.add_argument(
        "--alpha",
        type=float,
        default=1.0,
        help="Dirichlet concentration of each device's label mix; small is non-IID (default: %(default)s)",
    )
    s.add_argument("--min-examples", type=int, default=8, help="fewest examples on a device (default: %(default)s)")
    s.add_argument("--max-examples", type=int, default=40, help="most examples on a device (default: %(default)s)")
    s.add_argument(
        "--test-fraction",
        type=float,
        default=0.3,
        help="share of each device's examples it holds out to score the global head (default: %(default)s)",
    )
    s.add_argument("--eval-data", help="a server-side held-out set scored after every round (default: none)")
    s.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        default="auto",
        help="the devices' head-training engine (default: %(default)s)",
    )
    s.add_argument(
        "--cache-dir",
        help="folder that keeps backbone features between runs and devices (default: a temporary folder per process)",
    )
    s.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes running the devices; each loads the backbone once (default: %(default)s)",
    )
    _add_data_args(s)
    s.set_defaults(run=_run_fleet_simulate)
    v = sub.add_parser(
        "serve",
        parents=[common, runs],
        help="run a SuperLink and the fleet's rounds over the devices that join it",
        description="Start a Flower SuperLink, wait for --min-clients SuperNodes (edgeft fleet join), run the "
        "rounds, write the bundle version, stop.",
    )
    v.add_argument("--host", default="127.0.0.1", help="address the SuperLink listens on (default: %(default)s)")
    v.add_argument("--port", type=int, default=9092, help="the SuperLink's port (default: %(default)s)")
    v.add_argument("--timeout", type=float, default=3600.0, help="seconds the whole run may take (default: %(default)s)")
    v.add_argument("--log", help="file for the SuperLink's log (default: this terminal)")
    _tls_args(v, server=True)
    v.set_defaults(run=_run_fleet_serve)
    j = sub.add_parser(
        "join",
        parents=[common],
        help="take part in a fleet as one device (a Flower SuperNode)",
        description="Start a Flower SuperNode with this device's bundle and data; only the head's arrays leave it. "
        "It runs until interrupted, or for --max-seconds.",
    )
    j.add_argument("--data", required=True, help="this device's labelled examples (.csv, .jsonl or .npz) (required)")
    j.add_argument("--test-data", required=True, help="its held-out examples, to score each global head (required)")
    j.add_argument("--superlink", default="127.0.0.1:9092", help="the SuperLink's host:port (default: %(default)s)")
    j.add_argument(
        "--port", type=int, default=9094, help="this SuperNode's own port; one per SuperNode on a machine (default: %(default)s)"
    )
    j.add_argument(
        "--max-wait",
        type=float,
        default=30.0,
        help="seconds of connection errors before a request to the SuperLink gives up (default: %(default)s)",
    )
    j.add_argument(
        "--max-seconds", type=float, help="stop the SuperNode after this many seconds (default: run until interrupted)"
    )
    _tls_args(j, server=False)
    j.set_defaults(run=_run_fleet_join)


def _tls_args(p: argparse.ArgumentParser, *, server: bool) -> None:
    p.add_argument("--tls-ca", help="PEM file of the CA that signed the SuperLink's certificate (default: none; TLS needs it)")
    if server:
        p.add_argument("--tls-cert", help="PEM file of the SuperLink's certificate (default: none; TLS needs it)")
        p.add_argument("--tls-key", help="PEM file of the certificate's private key (default: none; TLS needs it)")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="no TLS: plain HTTP, for tests and trusted networks only; without it, the TLS files are required (default: off)",
    )


def _tls(args: argparse.Namespace) -> Any:
    """The TLS files given, or None where --insecure was asked for; neither is an error."""
    from fleet.deployment import Tls

    if args.insecure:
        return None
    if not args.tls_ca:
        raise ConfigError("Give the TLS files (--tls-ca, and for serve --tls-cert and --tls-key), or pass --insecure.")
    return Tls(args.tls_ca, getattr(args, "tls_cert", None), getattr(args, "tls_key", None))


def fleet_training_arguments(p: argparse.ArgumentParser) -> None:
    """How a fleet trains: its start, aggregation and local training (the fleet commands' and benchmarks/fleet.py's)."""
    from fleet.config import FleetConfig

    d = FleetConfig()
    p.add_argument(
        "--start",
        choices=[v.value for v in type(d.start)],
        default=d.start.value,
        help="where the rounds start: a closed-form head from the devices' summed feature statistics (gaussian, ridge; "
        "one query round), or the bundle's head (shipped) (default: %(default)s)",
    )
    p.add_argument(
        "--shrinkage",
        type=float,
        default=d.shrinkage,
        help="the closed form's regularization: covariance shrinkage in (0, 1] (gaussian), penalty > 0 (ridge) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--aggregation",
        choices=["fedavg", "fedadam"],
        default=d.aggregation.value,
        help="Flower strategy over the heads (default: %(default)s)",
    )
    p.add_argument("--server-lr", type=float, default=d.server_lr, help="FedAdam's server step size (default: %(default)s)")
    p.add_argument(
        "--local-epochs",
        type=int,
        help="partial_fit epochs per round on each device (default: 5 after a closed-form start, 20 from the shipped head)",
    )
    p.add_argument("--local-lr", type=float, help="learning rate on the devices (default: the bundle's)")
    p.add_argument(
        "--local-schedule",
        choices=[v.value for v in Schedule],
        default=d.local_schedule.value,
        help="learning-rate schedule within each round on the devices (default: %(default)s)",
    )


def _fleet_config(args: argparse.Namespace) -> Any:
    from fleet.config import FleetConfig, PrivacyConfig

    return FleetConfig(
        rounds=args.rounds,
        fraction_train=args.fraction_train,
        fraction_evaluate=args.fraction_evaluate,
        min_available_clients=args.min_clients,
        min_train_clients=args.min_train_clients,
        min_evaluate_clients=args.min_evaluate_clients,
        aggregation=args.aggregation,
        server_lr=args.server_lr,
        local_epochs=args.local_epochs,
        local_lr=args.local_lr,
        local_schedule=args.local_schedule,
        round_timeout=args.round_timeout,
        save_every=args.save_every,
        privacy=PrivacyConfig(args.dp_clip, args.dp_noise, args.dp_feature_norm, args.dp_delta) if args.dp else None,
        seed=args.seed,
        start=args.start,
        shrinkage=args.shrinkage,
    )


def _publish(args: argparse.Namespace) -> Any:
    from fleet.server import Publish

    return Publish(
        args.output, args.bundle_version, args.registry, args.token or os.environ.get("EDGEFT_REGISTRY_TOKEN"), args.overwrite
    )


def _run_fleet_simulate(args: argparse.Namespace) -> None:
    from edgeft.data import read_examples
    from fleet.partition import dirichlet_devices
    from fleet.simulation import simulate

    config = _fleet_config(args)
    X, y = read_examples(args.data, text_column=args.text_column, label_column=args.label_column)
    devices = dirichlet_devices(
        X,
        y,
        args.devices,
        args.alpha,
        sizes=(args.min_examples, args.max_examples),
        test_fraction=args.test_fraction,
        seed=args.seed,
    )
    eval_data = (
        read_examples(args.eval_data, text_column=args.text_column, label_column=args.label_column) if args.eval_data else None
    )
    with _ProgressBars() as bars:
        result = simulate(
            args.bundle,
            devices,
            config,
            publish=_publish(args),
            eval_data=eval_data,
            runtime=RuntimeConfig(engine=args.engine, cache_dir=args.cache_dir),
            processes=args.processes,
            progress=bars,
        )
    for r in result.rounds[1:]:
        central = f", central accuracy {r['central']['accuracy']:.4f}" if r["central"] else ""
        held = r["devices"].get("accuracy")
        print(
            f"round {r['round']}: {r['clients']} devices, {r['examples']} examples, {r['seconds']:.1f}s"
            + (f", devices' held-out accuracy {held:.4f}" if held is not None else "")
            + central
        )
    refused = f"; refused {len(result.refused)} head(s)" if result.refused else ""
    print(f"wrote {', '.join(map(str, result.bundles))}{refused}")


def _run_fleet_serve(args: argparse.Namespace) -> int | None:
    from fleet.deployment import Endpoint, serve

    try:
        out = serve(
            args.bundle,
            _fleet_config(args),
            _publish(args),
            endpoint=Endpoint(args.host, args.port),
            timeout=args.timeout,
            log=Path(args.log) if args.log else None,
            tls=_tls(args),
        )
    except KeyboardInterrupt:
        print("stopped: the SuperLink and the processes it started have ended", file=sys.stderr)
        return 130
    provenance = json.loads((out / "fleet.json").read_text())
    print(f"wrote {out}: {provenance['rounds']} rounds, up to {provenance['clients']} devices, {provenance['examples']} examples")


def _run_fleet_join(args: argparse.Namespace) -> int | None:
    from fleet.deployment import Endpoint, join, run_node

    host, _, port = args.superlink.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--superlink must be host:port, got {args.superlink!r}")
    node = join(
        args.bundle,
        args.data,
        args.test_data,
        superlink=Endpoint(host, int(port)),
        port=args.port,
        max_wait=args.max_wait,
        tls=_tls(args),
    )
    try:
        run_node(node, args.max_seconds)
    except KeyboardInterrupt:
        print("stopped: the SuperNode and its ClientApp processes have ended", file=sys.stderr)
        return 130
    return None


@final
class _ProgressBars:
    """A progress callback that draws one tqdm bar per stage on the terminal."""

    def __enter__(self) -> _ProgressBars:
        from tqdm import tqdm

        self._tqdm, self._bars = tqdm, {}
        return self

    def __call__(self, progress: Any) -> None:
        bar = self._bars.get(progress.stage)
        if bar is None:
            unit = "example" if progress.stage == "features" else "epoch"
            bar = self._bars[progress.stage] = self._tqdm(total=progress.total, desc=progress.stage, unit=unit, leave=False)
        if progress.loss is not None:
            bar.set_postfix(loss=f"{progress.loss:.4f}", refresh=False)
        bar.update(progress.done - bar.n)
        if progress.done >= progress.total:
            bar.close()
            del self._bars[progress.stage]

    def __exit__(self, *exc: object) -> None:
        for bar in self._bars.values():
            bar.close()


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


if __name__ == "__main__":
    sys.exit(main())
