"""``edgeft inspect``: a bundle's manifest as a table or JSON."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from edgeft.cli.common import (
    _csv,
    _fmt,
    _size,
)
from edgeft.signing import UnsignedBundleWarning, trust_from_env


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
