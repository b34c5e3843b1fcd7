"""The manifest's schema: every malformed field is a BundleError naming it; the labels are bound to the head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_runtime import Personalizer
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.cli import main
from edgeft.errors import BundleError
from edgeft.manifest import Manifest


def _edit(bundle: Path, change) -> None:
    path = bundle / layout.MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _swap_first_two(labels: list[str]) -> None:
    labels[0], labels[1] = labels[1], labels[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(labels=[]), r"labels: List should have at least 1 item"),
        (lambda m: m.update(labels="business,tech"), r"labels: Input should be a valid array, got 'business,tech' \(str\)"),
        (lambda m: m["labels"].pop(), r"labels has 4 entries and head.spare_labels is 4, but head.out_features is 9"),
        (lambda m: m["labels"].append("weather"), r"labels has 6 entries and head.spare_labels is 4, but head.out_features is 9"),
        (lambda m: m["input"].update(max_length=-1), r"input.max_length: Input should be greater than or equal to 3, got -1"),
        (lambda m: m["head"].update(out_features="5"), r"head.out_features: Input should be a valid integer, got '5' \(str\)"),
        (lambda m: m["backbone"].update(precision="fp8"), r"backbone.precision: Input should be 'fp32' or 'int8'"),
        (lambda m: m.update(colour="red"), r"colour: Unexpected keyword argument|colour: Extra inputs are not permitted"),
        (lambda m: m["files"]["backbone.onnx"].update(sha256="x"), r"files.backbone.onnx.sha256: String should match pattern"),
    ],
    ids=[
        "no labels",
        "labels a string",
        "4 labels for 5 outputs",
        "6 labels for 5 outputs",
        "max_length -1",
        "a number as a string",
        "unknown precision",
        "an unknown key",
        "a malformed sha256",
    ],
)
def test_a_malformed_manifest_field_is_a_bundle_error_naming_it(bundle_copy: Path, change, message: str) -> None:
    _edit(bundle_copy, change)
    with pytest.raises(BundleError, match=message):
        Bundle.load(bundle_copy)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[]", "must hold a JSON object, got list"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
    ids=["a list", "nested 100,000 deep", "not UTF-8"],
)
def test_a_manifest_that_is_no_object_is_a_bundle_error(bundle_copy: Path, raw: bytes, message: str) -> None:
    (bundle_copy / layout.MANIFEST).write_bytes(raw)
    with pytest.raises(BundleError, match=message):
        Bundle.load(bundle_copy)


def test_swapped_labels_in_the_manifest_are_refused_by_the_head_s_own_labels(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: _swap_first_two(m["labels"]))
    with pytest.raises(BundleError, match=r"but the head was exported for \['business', 'entertainment'"):
        Bundle.load(bundle_copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["input"].update(input_names=["input_ids", "attention_mask", "pixels"]), "backbone graph's inputs are"),
        (lambda m: m["backbone"].update(output_name="nothing"), "backbone.output_name is 'nothing'"),
    ],
    ids=["unknown input name", "unknown output name"],
)
def test_names_the_backbone_graph_lacks_are_a_bundle_error(bundle_copy: Path, change, message: str) -> None:
    _edit(bundle_copy, change)
    with pytest.raises(BundleError, match=message):
        Personalizer.from_bundle(bundle_copy)


def test_every_problem_is_named_at_once(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: (m["input"].update(max_length=0), m["head"].update(kind="tree")))
    with pytest.raises(BundleError, match=r"\(2 problem\(s\)\): input.max_length.*; head.kind"):
        Bundle.load(bundle_copy)


def test_inspect_says_what_is_wrong_instead_of_a_traceback(bundle_copy: Path, capsys) -> None:
    _edit(bundle_copy, lambda m: m.update(labels=[]))
    assert main(["inspect", str(bundle_copy)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgeft inspect: error: manifest.json does not match the schema") and "labels:" in err
    assert "Traceback" not in err


def test_from_dict_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(BundleError, match="not plain JSON data"):
        Manifest.from_dict({"format_version": 1, "labels": {1, 2}})
