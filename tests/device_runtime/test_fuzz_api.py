"""Property-based: whatever a saved state.json or a caller of the Python API gives, the answer is a value or a typed error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_runtime import Personalizer
from device_runtime.state import read_state
from edgeft.config import RuntimeConfig
from edgeft.errors import EdgeftError, StateError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
LABELS = ["business", "entertainment", "politics", "sports", "tech"]

scalars = st.none() | st.booleans() | st.integers(-(2**66), 2**66) | st.floats() | st.text(max_size=10)
json_values = st.recursive(
    scalars.filter(lambda v: not isinstance(v, float) or np.isfinite(v)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
texts = st.text(max_size=40)  # any code points, lone surrogates included
inputs = (
    st.lists(texts, max_size=4)
    | st.lists(scalars, max_size=3)
    | scalars
    | st.builds(np.array, st.lists(st.integers(0, 255), max_size=4))
    | st.lists(st.lists(texts, max_size=2), max_size=2)
)
labels = st.lists(st.sampled_from(LABELS) | st.text(max_size=6) | scalars, max_size=4) | scalars


@pytest.fixture(scope="module")
def saved_state(minilm_bundle: Path, bbc_splits, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "state"
    texts_, labels_ = bbc_splits["user"]
    Personalizer.from_bundle(minilm_bundle).fit(texts_[:20], labels_[:20], epochs=1, accept="always").save(folder)
    return folder


@pytest.fixture(scope="module")
def personalizer(minilm_bundle: Path, feature_cache_dir: Path) -> Personalizer:
    return Personalizer.from_bundle(minilm_bundle, runtime=RuntimeConfig(cache_dir=str(feature_cache_dir)))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


@FUZZ
@given(data=st.data(), delete=st.booleans(), value=json_values)
def test_a_mutated_state_json_reads_or_is_a_state_error(saved_state: Path, tmp_path_factory, data, delete: bool, value) -> None:
    record = json.loads((saved_state / "state.json").read_text())
    path = data.draw(st.sampled_from(_paths(record)))
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    folder = tmp_path_factory.mktemp("mutated") / "state"
    shutil.copytree(saved_state, folder)
    (folder / "state.json").write_text(json.dumps(record))
    try:
        read_state(folder)
    except StateError:
        pass


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(key=st.sampled_from(["config", "history", "report", "seen", "pinned"]), value=json_values)
def test_a_mutated_state_loads_or_is_an_edgeft_error(saved_state: Path, tmp_path_factory, key: str, value) -> None:
    folder = tmp_path_factory.mktemp("mutated") / "state"
    shutil.copytree(saved_state, folder)
    record = json.loads((folder / "state.json").read_text())
    (folder / "state.json").write_text(json.dumps({**record, key: value}))
    try:
        Personalizer.load(folder)
    except EdgeftError:
        pass


@FUZZ
@given(X=inputs)
def test_predict_answers_or_raises_an_edgeft_error(personalizer: Personalizer, X) -> None:
    try:
        proba = personalizer.predict_proba(X)
    except EdgeftError:
        return
    assert proba.shape == (len(X), len(LABELS)) and np.isfinite(proba).all()


@FUZZ
@given(X=inputs, y=labels, epochs=st.integers(-2, 2) | scalars, seed=st.integers(-3, 3) | scalars)
def test_fit_answers_or_raises_an_edgeft_error(personalizer: Personalizer, X, y, epochs, seed) -> None:
    try:
        personalizer.fit(X, y, epochs=epochs, seed=seed)
    except EdgeftError:
        pass


@FUZZ
@given(version=scalars | st.integers(-3, 3), threshold=scalars)
def test_rollback_and_drift_report_answer_or_raise_an_edgeft_error(personalizer: Personalizer, version, threshold) -> None:
    for call in (lambda: personalizer.rollback(version), lambda: personalizer.drift_report(threshold)):
        try:
            call()
        except EdgeftError:
            pass


@FUZZ
@given(
    options=st.dictionaries(
        st.sampled_from(["engine", "providers", "intra_op_threads", "cache_memory_mb", "cache_dir", "trust", "keep_versions"]),
        scalars,
        max_size=3,
    )
)
def test_runtime_config_builds_or_raises_a_config_error(options: dict) -> None:
    try:
        RuntimeConfig(**options)
    except EdgeftError:
        pass
