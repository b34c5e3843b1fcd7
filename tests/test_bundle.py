"""The bundle format: what is written is what is read, and nothing altered gets through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.errors import BundleError
from edgeft.layout import FORMAT_VERSION
from edgeft.manifest import Manifest
from example_data import minilm_path


def test_manifest_round_trips_through_json(minilm_bundle: Path) -> None:
    manifest = Bundle.load(minilm_bundle).manifest
    assert Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest


def test_manifest_lists_every_file_with_size_and_checksum(minilm_bundle: Path) -> None:
    manifest = Bundle.load(minilm_bundle).manifest
    on_disk = {p.relative_to(minilm_bundle).as_posix() for p in minilm_bundle.rglob("*") if p.is_file()}
    assert set(manifest.files) == on_disk - {layout.MANIFEST}
    assert manifest.files[layout.BACKBONE].size == (minilm_bundle / layout.BACKBONE).stat().st_size


def test_manifest_records_what_a_device_needs(minilm_bundle: Path) -> None:
    m = Bundle.load(minilm_bundle).manifest
    assert m.format_version == FORMAT_VERSION
    assert m.labels == ["business", "entertainment", "politics", "sports", "tech"]
    assert (m.input.modality, m.input.max_length) == ("text", 128)
    assert (m.backbone.precision, m.backbone.feature_size) == ("int8", 384)
    assert (m.head.in_features, m.head.out_features, m.head.trained) == (384, 5 + m.head.spare_labels, True)
    assert m.base_model == {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "license": "apache-2.0",
        "source": minilm_path().name,  # the folder it was exported from, by name: never a workstation path
    }


def test_tampered_file_is_rejected_naming_the_file(bundle_copy: Path) -> None:
    checkpoint = bundle_copy / layout.CHECKPOINT
    data = bytearray(checkpoint.read_bytes())
    data[-1] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="head/checkpoint does not match its checksum"):
        Bundle.load(bundle_copy)


def test_missing_file_is_rejected_naming_the_file(bundle_copy: Path) -> None:
    (bundle_copy / layout.TOKENIZER).unlink()
    with pytest.raises(BundleError, match="tokenizer.json is missing"):
        Bundle.load(bundle_copy)


def test_other_format_version_is_rejected(bundle_copy: Path) -> None:
    path = bundle_copy / layout.MANIFEST
    data = json.loads(path.read_text())
    data["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="format version 2 is not supported"):
        Bundle.load(bundle_copy)


def test_corrupt_manifest_is_a_bundle_error(bundle_copy: Path) -> None:
    (bundle_copy / layout.MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(bundle_copy)


def test_folder_without_manifest_says_how_to_make_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="edgeft export"):
        Bundle.load(tmp_path)


def test_fingerprint_changes_when_a_file_changes(minilm_bundle: Path, bundle_copy: Path) -> None:
    from edgeft.bundle import write_manifest

    manifest = Bundle.load(bundle_copy).manifest
    (bundle_copy / layout.TOKENIZER).write_text("{}")
    write_manifest(bundle_copy, manifest)
    assert Bundle.load(bundle_copy).fingerprint != Bundle.load(minilm_bundle).fingerprint


def test_fingerprint_changes_with_the_label_order_but_not_the_version(minilm_bundle: Path, bundle_copy: Path) -> None:
    import dataclasses

    from edgeft.bundle import write_manifest

    manifest = Bundle.load(bundle_copy).manifest
    write_manifest(bundle_copy, dataclasses.replace(manifest, version="1.0.1"))
    assert Bundle.load(bundle_copy).fingerprint == Bundle.load(minilm_bundle).fingerprint  # heads carry over
    write_manifest(bundle_copy, dataclasses.replace(manifest, labels=manifest.labels[::-1]))
    assert (
        Bundle.load(bundle_copy).fingerprint != Bundle.load(minilm_bundle).fingerprint
    )  # a head's rows would mean other classes
