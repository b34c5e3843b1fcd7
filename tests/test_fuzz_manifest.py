"""Property-based: whatever a manifest, a trust file or a data file holds, reading it gives a value or a typed error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeft.bundle import Bundle
from edgeft.data import read_examples
from edgeft.errors import BundleError, ConfigError, DataError
from edgeft.manifest import Manifest
from edgeft.signing import TrustPolicy

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def manifest_dict(minilm_bundle: Path) -> dict[str, Any]:
    return json.loads(Bundle.load(minilm_bundle).file("manifest.json").read_text())


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON value (the places a mutation can hit)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _paths(child, (*prefix, i))
    return found


def _mutated(document: dict[str, Any], path: tuple, action: str, value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[f"{path[-1]}_extra"] = value
    else:
        parent[path[-1]] = value
    return copy


@FUZZ
@given(data=st.data(), action=st.sampled_from(["replace", "delete", "add"]), value=json_values)
def test_a_mutated_manifest_parses_or_is_a_bundle_error(manifest_dict, data, action, value) -> None:
    path = data.draw(st.sampled_from(_paths(manifest_dict)))
    document = _mutated(manifest_dict, path, action, value)
    try:
        Manifest.from_dict(document)
    except BundleError:
        pass


@FUZZ
@given(document=json_values)
def test_any_json_document_as_a_manifest_is_a_bundle_error(document) -> None:
    with pytest.raises(BundleError):
        Manifest.from_dict(document)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_manifest_are_a_bundle_error(raw: bytes) -> None:
    with pytest.raises(BundleError):
        Manifest.from_json(raw)


@FUZZ
@given(document=json_values)
def test_any_json_document_as_a_trust_file_loads_or_is_a_config_error(tmp_path: Path, document) -> None:
    (tmp_path / "trust.json").write_text(json.dumps(document))
    try:
        TrustPolicy.load(tmp_path / "trust.json")
    except ConfigError:
        pass


@FUZZ
@given(suffix=st.sampled_from([".csv", ".jsonl", ".npz"]), raw=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_file_as_examples_reads_or_is_a_data_error(tmp_path: Path, suffix: str, raw: bytes) -> None:
    path = tmp_path / f"data{suffix}"
    path.write_bytes(raw)
    try:
        read_examples(path)
    except DataError:
        pass


@FUZZ
@given(rows=st.lists(st.dictionaries(st.sampled_from(["text", "label", "other"]), json_values, max_size=3), max_size=5))
def test_any_jsonl_rows_read_or_are_a_data_error(tmp_path: Path, rows) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    try:
        texts, labels = read_examples(path)
    except DataError:
        return
    assert len(texts) == len(labels) == len(rows)
