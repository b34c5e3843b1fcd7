"""The commands on a device: ``personalize``, ``predict``, ``evaluate``, ``rollback`` and ``drift``;
device_runtime is imported only when one runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgeft.cli.common import (
    _LABELLED_FILES,
    _add_data_args,
    _add_runtime_args,
    _add_trust_arg,
    _ProgressBars,
    _runtime,
)
from edgeft.cli.flags import add_flags, config_from_args, given
from edgeft.config import DRIFT_THRESHOLD, DriftConfig, NewLabels, RuntimeConfig, TrainConfig
from edgeft.fields import DRIFT, PERSONALIZE
from edgeft.signing import trust_from_env

DRIFT_EXIT_CODE = 3  # `edgeft drift` found drift: scripts tell it apart from errors (1) and usage errors (2)


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
        choices=[v.value for v in NewLabels],
        default=NewLabels.REFUSE.value,
        help=f"{NewLabels.__doc__} (default: %(default)s)",
    )
    _add_data_args(p)
    add_flags(p, TrainConfig, PERSONALIZE, unset="the bundle's")
    _add_runtime_args(p)
    p.set_defaults(run=_run_personalize)


def _run_personalize(args: argparse.Namespace) -> None:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    texts, labels = read_examples(args.data, text_column=args.text_column, label_column=args.label_column)
    personalizer = Personalizer.load(args.model, runtime=_runtime(args))
    personalizer.check_save(args.state)  # before training, not after: a state with versions it never loaded
    train = personalizer.partial_fit if args.resume else personalizer.fit
    with _ProgressBars() as bars:
        train(texts, labels, progress=bars, new_labels=args.new_labels, **given(args, TrainConfig, PERSONALIZE))
    personalizer.save(args.state)
    r = personalizer.report_
    print(f"{'accepted' if r.accepted else 'rejected'}: {r.reason}")
    if r.shift and r.shift["tested"]:
        print(f"input shift: {r.shift['reason']}")
    if r.verdicts:
        print(
            "recall per label (current -> new; a drop is a loss only beyond max_label_loss and at p < forgetting_level): "
            + ", ".join(map(_verdict, r.verdicts))
        )
    if r.added_labels:
        print(f"added label(s): {', '.join(r.added_labels)}")
    print(
        f"head version {r.version}; {r.examples} examples, {r.epochs} epochs ({r.stopped}), "
        f"{r.feature_seconds:.2f}s features + {r.train_seconds:.2f}s training on {r.engine}/{r.provider}; "
        f"state saved to {args.state}"
    )


def _verdict(v: dict[str, Any]) -> str:
    """One label's line: on how many rows, both recalls, and for a drop the chance of it were the heads equal."""
    rows = f"{v['rows']} {v['source']} row{'s' if v['rows'] != 1 else ''}"
    drop = f" (p={v['p']:.2f})" if v["new"] < v["current"] else ""
    return f"{v['label']} on {rows} {v['current']:.2f} -> {v['new']:.2f} {'kept' if v['kept'] else 'LOST'}{drop}"


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
        default=DRIFT_THRESHOLD,
        help="cumulative feature shift counted as drift where the windowed test cannot run (default: %(default)s)",
    )
    add_flags(p, DriftConfig, DRIFT)
    _add_data_args(p, labels=False)
    _add_trust_arg(p)
    p.set_defaults(run=_run_drift)


def _run_drift(args: argparse.Namespace) -> int:
    from device_runtime import Personalizer
    from edgeft.data import read_examples

    drift = config_from_args(args, DriftConfig, DRIFT, min_window=min(DriftConfig.min_window, args.window), check_every=0)
    personalizer = Personalizer.load(args.model, drift=drift, runtime=RuntimeConfig(trust=trust_from_env(args.trust)))
    if args.data:
        texts, _ = read_examples(args.data, text_column=args.text_column, label_column=None)
        personalizer.predict_proba(texts)
    report = personalizer.drift_report(args.threshold)
    print(json.dumps(report, indent=2))
    return DRIFT_EXIT_CODE if report["drifted"] else 0
