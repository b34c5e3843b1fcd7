"""The state layer never writes what it cannot read: heads finite, state.json loadable, labels valid Unicode."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_runtime import Personalizer
from device_runtime.report import FitReport
from device_runtime.state import STATE_FILE, read_state
from device_runtime.state_schema import parse_record
from edgeft.errors import DataError, EdgeftError, StateError

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
TEXTS = [f"text {i} about {topic}" for i in range(4) for topic in ("markets", "football")]


@pytest.fixture(scope="module")
def personalizer(minilm_bundle: Path) -> Personalizer:
    return Personalizer.load(minilm_bundle)


def _labels(p: Personalizer) -> list[str]:
    return [p.labels[i % 2] for i in range(len(TEXTS))]


def _finite(folder: Path) -> bool:
    _, parameters, _ = read_state(folder)
    return all(np.all(np.isfinite(a)) for version in parameters.values() for a in version.values())


def test_a_non_finite_head_version_is_refused_and_the_saved_state_kept(minilm_bundle: Path, tmp_path: Path) -> None:
    p = Personalizer.load(minilm_bundle)
    p.save(tmp_path / "state")
    before = (tmp_path / "state" / STATE_FILE).read_bytes()
    p.versions_.add({k: np.full_like(v, np.nan) for k, v in p.head_parameters().items()}, {"source": "diverged"})
    with pytest.raises(StateError, match=r"head version 1's .* holds NaN or infinite values"):
        p.save(tmp_path / "state")
    assert (tmp_path / "state" / STATE_FILE).read_bytes() == before
    Personalizer.load(tmp_path / "state")


def test_a_diverged_run_never_reaches_the_disk(minilm_bundle: Path, tmp_path: Path) -> None:
    p = Personalizer.load(minilm_bundle)
    p.save(tmp_path / "state")
    with contextlib.suppress(EdgeftError):  # the guard may refuse it already (it should); the state layer must in any case
        p.fit(TEXTS, _labels(p), lr=1e30, epochs=5, accept="always")
    with contextlib.suppress(StateError):
        p.save(tmp_path / "state")
    assert _finite(tmp_path / "state")


@pytest.mark.parametrize("label", ["\ud800", "a\udfffb"])
def test_a_lone_surrogate_label_is_refused_at_the_boundary(minilm_bundle: Path, label: str) -> None:
    p = Personalizer.load(minilm_bundle)
    with pytest.raises(DataError, match="lone surrogate"):
        p.fit(TEXTS, [label, *_labels(p)[1:]], new_labels="add", epochs=1)
    with pytest.raises(DataError, match="lone surrogate"):
        p.add_labels([label])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(["\ud800", "a\udc00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def fit_report(reason: str, scores: dict[str, float], verdicts: list[dict]) -> FitReport:
    return FitReport(
        accepted=True,
        reason=reason,
        version=0,
        stopped="completed",
        examples=1,
        engine="ort",
        provider="CPUExecutionProvider",
        feature_seconds=0.0,
        train_seconds=0.0,
        new=scores,
        verdicts=verdicts,
    )


@FUZZ
@given(
    reason=st.text(max_size=6) | st.sampled_from(["\ud800", "a\udc00"]),
    scores=st.dictionaries(st.sampled_from(["loss", "accuracy", "macro_f1"]), st.floats()),
    verdicts=st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=3), max_size=2),
    history=st.lists(st.floats(), max_size=3),
)
def test_whatever_a_save_writes_loads_again(
    personalizer: Personalizer, tmp_path_factory, reason, scores, verdicts, history
) -> None:
    folder = tmp_path_factory.mktemp("state")
    personalizer.report_, personalizer.history_ = fit_report(reason, scores, verdicts), history
    try:
        personalizer.save(folder)
    except StateError:
        assert not (folder / STATE_FILE).exists()
        return
    read_state(folder)


@pytest.fixture(scope="module")
def good_record(personalizer: Personalizer, tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("good")
    personalizer.report_, personalizer.history_ = None, []
    personalizer.save(folder)
    return (folder / STATE_FILE).read_bytes()


@FUZZ
@given(data=st.data())
def test_any_state_json_is_a_record_or_a_state_error(good_record: bytes, data) -> None:
    record = json.loads(good_record)
    key = data.draw(st.sampled_from(sorted(record)))
    record[key] = data.draw(json_values)
    raw = json.dumps(record).encode() if data.draw(st.booleans()) else data.draw(st.binary(max_size=64))
    try:
        parse_record(raw, STATE_FILE)
    except StateError:
        pass
