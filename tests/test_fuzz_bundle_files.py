"""Property-based: whatever bytes a bundle's JSON or .npz file holds (its checksum updated), reading it gives a value or
a BundleError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.errors import BundleError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module")
def bundle(minilm_bundle: Path) -> Bundle:
    return Bundle.load(minilm_bundle)


def _npz_like() -> st.SearchStrategy[bytes]:
    """Real .npz bytes, cut or with one byte changed: the damage a rewritten file (checksum updated) can carry."""
    buffer = io.BytesIO()
    np.savez(buffer, features=np.ones((3, 4), np.float32), labels=np.arange(3))
    raw = buffer.getvalue()
    cut = st.integers(0, len(raw)).map(lambda n: raw[:n])
    flipped = st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)).map(
        lambda p: raw[: p[0]] + bytes([raw[p[0]] ^ p[1]]) + raw[p[0] + 1 :]
    )
    return cut | flipped | st.binary(max_size=200)


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=60).map(str.encode))
def test_a_bundle_json_file_reads_as_a_value_or_a_bundle_error(bundle: Bundle, tmp_path_factory, raw: bytes) -> None:
    copy = Bundle(tmp_path_factory.mktemp("b"), bundle.manifest)
    (copy.path / layout.REFERENCE).write_bytes(raw)
    try:
        copy.read_json(layout.REFERENCE)
    except BundleError:
        pass


@FUZZ
@given(raw=_npz_like())
def test_a_bundle_npz_file_reads_as_arrays_or_a_bundle_error(bundle: Bundle, tmp_path_factory, raw: bytes) -> None:
    copy = Bundle(tmp_path_factory.mktemp("b"), bundle.manifest)
    (copy.path / layout.REPLAY).parent.mkdir(parents=True, exist_ok=True)
    (copy.path / layout.REPLAY).write_bytes(raw)
    try:
        arrays = copy.read_arrays(layout.REPLAY, ("features", "labels"))
    except BundleError:
        return
    assert {"features", "labels"} <= set(arrays)
