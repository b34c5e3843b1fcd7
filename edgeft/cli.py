"""The ``edgeft`` command line. Each subcommand parses its arguments and calls
one library function; heavy imports (torch, optimum) happen only in ``export``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edgeft import __version__
from edgeft.config import Accept, Engine, ExportConfig, HeadKind, Metric, Quantization, RuntimeConfig, Schedule, TrainConfig
from edgeft.errors import EdgeftError

TRAIN_DEFAULTS = TrainConfig()
EXPORT_DEFAULTS = ExportConfig()
RUNTIME_DEFAULTS = RuntimeConfig()
DEVICE_TRAIN_KEYS = ("weight_decay", "validation_fraction", "patience", "metric", "balanced_sampling", "max_seconds", "accept")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        args.run(args)
    except EdgeftError as e:
        print(f"edgeft {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeft", description="Export a model once, personalize its head on every device.")
    parser.add_argument("--version", action="version", version=f"edgeft {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for build in (_export_parser, _inspect_parser, _personalize_parser, _predict_parser, _evaluate_parser,
                  _rollback_parser, _drift_parser):
        build(commands)
    return parser


def _add_data_args(p: argparse.ArgumentParser, *, labels: bool = True) -> None:
    p.add_argument("--text-column", default="text", help="column holding the text (default: %(default)s)")
    if labels:
        p.add_argument("--label-column", default="label", help="column holding the label (default: %(default)s)")


def _add_train_args(p: argparse.ArgumentParser, defaults: TrainConfig | None) -> None:
    """Training flags; with ``defaults`` None, unset flags keep the bundle's own defaults."""
    d = defaults or TRAIN_DEFAULTS
    keep = "the bundle's" if defaults is None else "%(default)s"
    default = (lambda v: None) if defaults is None else (lambda v: v)
    p.add_argument("--epochs", type=int, default=default(d.epochs), help=f"passes over the data (default: {keep})")
    p.add_argument("--lr", type=float, default=default(d.lr), help=f"peak learning rate of AdamW (default: {keep})")
    p.add_argument("--batch-size", type=int, default=default(d.batch_size), help=f"examples per step (default: {keep})")
    p.add_argument("--schedule", choices=[s.value for s in Schedule], default=default(d.schedule.value), help=f"learning-rate schedule after warm-up (default: {keep})")
    p.add_argument("--warmup-steps", type=int, default=default(d.warmup_steps), help=f"steps of linear warm-up (default: {keep})")
    p.add_argument("--seed", type=int, default=default(d.seed), help=f"shuffling seed (default: {keep})")


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("epochs", "lr", "batch_size", "schedule", "warmup_steps", "seed", *DEVICE_TRAIN_KEYS)
    return {k: getattr(args, k) for k in keys if hasattr(args, k)}


def _add_device_train_args(p: argparse.ArgumentParser) -> None:
    """Controls of on-device training; unset flags keep the bundle's (or TrainConfig's) defaults."""
    d = TRAIN_DEFAULTS
    p.add_argument("--weight-decay", type=float, help="AdamW's decoupled weight decay (default: the bundle's)")
    p.add_argument("--validation-fraction", type=float, help=f"share of each class held out for early stopping and the acceptance check (default: {d.validation_fraction})")
    p.add_argument("--patience", type=int, help="stop after this many epochs without improvement of --metric (default: off)")
    p.add_argument("--metric", choices=[m.value for m in Metric], help=f"what early stopping and acceptance compare (default: {d.metric.value})")
    p.add_argument("--balanced-sampling", action="store_true", default=None, help="draw examples with probability 1/class count, for skewed data (default: off)")
    p.add_argument("--max-seconds", type=float, help="time budget of the whole run (default: none)")
    p.add_argument("--accept", choices=[a.value for a in Accept], help=f"when the new head replaces the current one (default: {d.accept.value})")


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    d = RUNTIME_DEFAULTS
    p.add_argument("--engine", choices=[e.value for e in Engine], default=d.engine.value, help="head training engine: ort, numpy, or auto = ort where installed (default: %(default)s)")
    p.add_argument("--providers", default=",".join(d.providers), help="backbone execution providers in order, e.g. cuda,cpu; missing ones fall back (default: %(default)s)")
    p.add_argument("--threads", type=int, default=d.intra_op_threads, help="intra-op threads of the backbone, 0 = ORT's choice (default: %(default)s)")
    p.add_argument("--inter-op-threads", type=int, default=d.inter_op_threads, help="inter-op threads, 0 = ORT's choice (default: %(default)s)")
    p.add_argument("--cache-dir", default=d.cache_dir, help="folder that keeps backbone features between runs (default: a temporary folder)")
    p.add_argument("--cache-memory-mb", type=float, default=d.cache_memory_mb, help="features kept in memory before spilling to disk (default: %(default)s)")


def _runtime(args: argparse.Namespace) -> RuntimeConfig:
    return RuntimeConfig(
        engine=args.engine, providers=tuple(args.providers.split(",")), intra_op_threads=args.threads,
        inter_op_threads=args.inter_op_threads, cache_dir=args.cache_dir, cache_memory_mb=args.cache_memory_mb,
    )


def _export_parser(commands: Any) -> None:
    d = EXPORT_DEFAULTS
    p = commands.add_parser("export", help="export a Hugging Face text model folder to a bundle",
                            description="Export a Hugging Face / sentence-transformers model folder to a bundle: "
                            "ONNX backbone (INT8 by default), head training artifacts, tokenizer, checksummed manifest. "
                            "With --train-data the head ships trained on those examples.")
    p.add_argument("--model", required=True, help="local model folder (config.json, weights, tokenizer.json)")
    p.add_argument("--output", required=True, help="bundle folder to write")
    p.add_argument("--train-data", help="server examples (.csv or .jsonl) to train the shipped head on")
    p.add_argument("--labels", help="comma-separated label set, in order (default: sorted labels of --train-data)")
    _add_data_args(p)
    p.add_argument("--name", default=d.name, help="bundle name (default: %(default)s)")
    p.add_argument("--version", dest="bundle_version", default=d.version, help="bundle version (default: %(default)s)")
    p.add_argument("--base-model", default=d.base_model, help="base model's name for the manifest (default: the folder's name)")
    p.add_argument("--license", default=d.license, help="base model's licence (default: %(default)s)")
    p.add_argument("--quantize", choices=[q.value for q in Quantization], default=d.quantization.value, help="backbone precision; the head is never quantized (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=d.max_length, help="tokens per text, longer text is truncated (default: %(default)s)")
    p.add_argument("--head", choices=[h.value for h in HeadKind], default=d.head.value, help="head type (default: %(default)s)")
    p.add_argument("--hidden-size", type=int, default=d.hidden_size, help="hidden units of an mlp head (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --output")
    _add_train_args(p, TRAIN_DEFAULTS)
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> None:
    from edgeft.data import read_examples
    from export import export_text_model

    config = ExportConfig(
        name=args.name, version=args.bundle_version, base_model=args.base_model, license=args.license,
        quantization=args.quantize, max_length=args.max_length, head=args.head, hidden_size=args.hidden_size,
        weight_decay=args.weight_decay,
    )
    texts = labels = None
    if args.train_data:
        texts, labels = read_examples(args.train_data, text_column=args.text_column, label_column=args.label_column)
    with _ProgressBars() as bars:
        manifest = export_text_model(
            args.model, args.output, texts=texts, labels=labels,
            label_set=args.labels.split(",") if args.labels else None,
            config=config, train_config=TrainConfig().replace(**_train_overrides(args)),
            overwrite=args.overwrite, progress=bars,
        )
    print(f"wrote {args.output}: {manifest.name}@{manifest.version}, {len(manifest.labels)} labels, "
          f"{manifest.backbone.precision} backbone, head {'trained' if manifest.head.trained else 'untrained'}")


def _inspect_parser(commands: Any) -> None:
    p = commands.add_parser("inspect", help="print a bundle's manifest as a table")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--json", action="store_true", help="print the raw manifest JSON instead")
    p.set_defaults(run=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> None:
    from edgeft.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    m = bundle.manifest
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
        return
    rows = [
        ("bundle", f"{m.name}@{m.version} (format {m.format_version}, edgeft {m.edgeft_version})"),
        ("created", m.created),
        ("base model", f"{m.base_model.get('name')} ({m.base_model.get('license')})"),
        ("task", m.task),
        ("labels", ", ".join(m.labels)),
        ("input", f"{m.input.modality}, max {m.input.max_length} tokens, inputs {', '.join(m.input.input_names)}"),
        ("backbone", f"{m.backbone.precision}, {m.backbone.feature_size} features from {m.backbone.output_name!r}"),
        ("head", f"{m.head.kind} {m.head.in_features}->{m.head.out_features}, {m.head.optimizer} (wd {m.head.weight_decay}), {'trained' if m.head.trained else 'untrained'}"),
        ("trainable", ", ".join(m.head.trainable)),
        ("device defaults", ", ".join(f"{k}={v}" for k, v in m.training.items())),
        *((f"metric {k}", _size(v) if "bytes" in k else _fmt(v)) for k, v in m.metrics.items()),
        *((f"file {name}", f"{_size(e.size):>10}  sha256 {e.sha256[:16]}…") for name, e in m.files.items()),
        ("total size", _size(sum(e.size for e in m.files.values()))),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _personalize_parser(commands: Any) -> None:
    p = commands.add_parser("personalize", help="train the head on local examples and save the state")
    p.add_argument("model", help="bundle folder, or a state folder to continue from")
    p.add_argument("--data", required=True, help="labelled examples (.csv or .jsonl)")
    p.add_argument("--state", required=True, help="folder to save the personalized state in")
    p.add_argument("--continue", dest="resume", action="store_true", help="continue from the current head (partial_fit) instead of the shipped one")
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
        train(texts, labels, progress=bars, **_train_overrides(args))
    personalizer.save(args.state)
    r = personalizer.report_
    print(f"{'accepted' if r['accepted'] else 'rejected'}: {r['reason']}")
    print(f"head version {r['version']}; {r['examples']} examples, {r['epochs']} epochs ({r['stopped']}), "
          f"{r['feature_seconds']:.2f}s features + {r['train_seconds']:.2f}s training on {r['engine']}/{r['provider']}; "
          f"state saved to {args.state}")


def _predict_parser(commands: Any) -> None:
    p = commands.add_parser("predict", help="predict labels for texts")
    p.add_argument("model", help="bundle or state folder")
    p.add_argument("--data", required=True, help="examples (.csv or .jsonl); labels are not needed")
    p.add_argument("--proba", action="store_true", help="also print each label's probability")
    _add_data_args(p, labels=False)
    p.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    texts, _ = read_examples(args.data, text_column=args.text_column, label_column=None)
    personalizer = Personalizer.load(args.model)
    proba = personalizer.predict_proba(texts)
    labels = personalizer.labels
    for text, p in zip(texts, proba):
        row = {"text": text[:80], "label": labels[int(p.argmax())]}
        if args.proba:
            row["proba"] = {label: round(float(v), 4) for label, v in zip(labels, p)}
        print(json.dumps(row))


def _evaluate_parser(commands: Any) -> None:
    p = commands.add_parser("evaluate", help="accuracy, macro P/R/F1 and confusion matrix on labelled texts")
    p.add_argument("model", help="bundle or state folder")
    p.add_argument("--data", required=True, help="labelled examples (.csv or .jsonl)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    _add_data_args(p)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    texts, labels = read_examples(args.data, text_column=args.text_column, label_column=args.label_column)
    report = Personalizer.load(args.model).evaluate(texts, labels)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"examples {report['n']}  accuracy {report['accuracy']:.4f}  macro P {report['macro_precision']:.4f}  "
          f"R {report['macro_recall']:.4f}  F1 {report['macro_f1']:.4f}  loss {report['loss']:.4f}")
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
    p.set_defaults(run=_run_rollback)


def _run_rollback(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer

    personalizer = Personalizer.load(args.state).rollback(args.to)
    personalizer.save(args.state)
    print(f"head version {personalizer.current_version} is current; versions: "
          + ", ".join(str(v["version"]) for v in personalizer.versions))


def _drift_parser(commands: Any) -> None:
    p = commands.add_parser("drift", help="has local data moved away from the data the bundle was exported on?")
    p.add_argument("model", help="bundle or state folder")
    p.add_argument("--data", help="more local examples (.csv or .jsonl) to include (default: only what the state has seen)")
    p.add_argument("--threshold", type=float, default=0.5, help="feature shift counted as drift (default: %(default)s)")
    _add_data_args(p, labels=False)
    p.set_defaults(run=_run_drift)


def _run_drift(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    personalizer = Personalizer.load(args.model)
    if args.data:
        texts, _ = read_examples(args.data, text_column=args.text_column, label_column=None)
        personalizer.predict_proba(texts)
    print(json.dumps(personalizer.drift_report(args.threshold), indent=2))


class _ProgressBars:
    """A progress callback that draws one tqdm bar per stage on the terminal."""

    def __enter__(self) -> _ProgressBars:
        from tqdm import tqdm

        self._tqdm, self._bars = tqdm, {}
        return self

    def __call__(self, progress: Any) -> None:
        bar = self._bars.get(progress.stage)
        if bar is None:
            unit = "text" if progress.stage == "features" else "epoch"
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
