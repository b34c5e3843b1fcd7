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
from typing import Any

from edgeft import __version__
from edgeft.config import ExportConfig, HeadKind, Quantization, Schedule, TrainConfig
from edgeft.errors import EdgeftError

TRAIN_DEFAULTS = TrainConfig()
EXPORT_DEFAULTS = ExportConfig()


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
                  _registry_parser, _push_parser, _pull_parser, _serve_parser):
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
    return {k: getattr(args, k) for k in ("epochs", "lr", "batch_size", "schedule", "warmup_steps", "seed")}


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
        *((f"metric {k}", _size(v) if k.endswith("bytes") else _fmt(v)) for k, v in m.metrics.items()),
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
    p.set_defaults(run=_run_personalize)


def _run_personalize(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    texts, labels = read_examples(args.data, text_column=args.text_column, label_column=args.label_column)
    personalizer = Personalizer.load(args.model)
    train = personalizer.partial_fit if args.resume else personalizer.fit
    with _ProgressBars() as bars:
        train(texts, labels, progress=bars, **_train_overrides(args))
    personalizer.save(args.state)
    m = personalizer.metrics_
    print(f"personalized on {m['examples']} examples in {m['train_seconds']:.2f}s of training "
          f"(final loss {m['final_loss']:.4f}); state saved to {args.state}")


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
    corner = "true \\ pred"  # a backslash inside an f-string expression is a SyntaxError before Python 3.12
    print(f"{corner:<{width}}  " + " ".join(f"{label[:6]:>6}" for label in report["labels"]))
    for label, row in zip(report["labels"], report["confusion_matrix"]):
        print(f"{label:<{width}}  " + " ".join(f"{v:>6}" for v in row))


def _registry_parser(commands: Any) -> None:
    p = commands.add_parser("registry", help="serve a bundle registry from a local folder",
                            description="Serve bundles from --root. Publishing needs the bearer token in "
                            "EDGEFT_REGISTRY_TOKEN; with EDGEFT_REGISTRY_READ_TOKEN set, reading needs a token too.")
    p.add_argument("--root", required=True, help="folder holding the published bundles")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8700, help="port to listen on (default: %(default)s)")
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
    p.set_defaults(run=_run_pull)


def _run_pull(args: argparse.Namespace) -> None:
    from edgeft.registry.client import pull

    result = pull(args.ref, args.registry, args.into, token=args.token or os.environ.get("EDGEFT_REGISTRY_READ_TOKEN"))
    resumed = f", resumed {len(result.resumed)} file(s)" if result.resumed else ""
    print(f"installed {result.name}@{result.version} at {result.path} ({_size(result.downloaded_bytes)} downloaded{resumed})")


def _serve_parser(commands: Any) -> None:
    p = commands.add_parser("serve", help="serve a bundle or personalized state over HTTP for apps on the device")
    p.add_argument("model", help="bundle folder, or a state folder saved by `personalize`")
    p.add_argument("--state", default=None, help="folder for the personalized head and the examples database "
                   "(default: the state folder given, or MODEL-state beside a bundle)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8701, help="port to listen on (default: %(default)s)")
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from device_runtime.service.app import create_app
    from device_runtime.service.settings import ServiceSettings
    from device_runtime.state import STATE_FILE
    from edgeft.bundle import MANIFEST
    from edgeft.errors import BundleError

    if not any((Path(args.model) / name).is_file() for name in (STATE_FILE, MANIFEST)):
        raise BundleError(f"{args.model} is neither a bundle ({MANIFEST}) nor a saved state ({STATE_FILE}); "
                          "pull a bundle with `edgeft pull` or save a state with `edgeft personalize`.")
    settings = ServiceSettings.for_model(args.model, state_dir=args.state)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


class _ProgressBars:
    """A progress callback that draws one tqdm bar per stage on the terminal."""

    def __enter__(self) -> _ProgressBars:
        from tqdm import tqdm

        self._tqdm, self._bars = tqdm, {}
        warnings.filterwarnings("once", category=UserWarning)
        return self

    def __call__(self, progress: Any) -> None:
        bar = self._bars.get(progress.stage)
        if bar is None:
            unit = "text" if progress.stage == "features" else "epoch"
            bar = self._bars[progress.stage] = self._tqdm(total=progress.total, desc=progress.stage, unit=unit, leave=False)
        bar.n = progress.done
        if progress.loss is not None:
            bar.set_postfix(loss=f"{progress.loss:.4f}", refresh=False)
        bar.refresh()
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
