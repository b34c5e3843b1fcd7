"""The service answers a tensor bundle's predict with a JSON body of arrays, checked as the runtime checks any input."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from device_runtime import Personalizer
from device_runtime.service.app import create_app
from device_runtime.service.schemas import MAX_TENSOR_VALUES
from device_runtime.service.settings import ServiceSettings
from tests.serve.conftest import running, wait_for_job


@pytest.fixture(scope="module")
def served(sensor_bundle, tmp_path_factory):
    settings = ServiceSettings.for_model(sensor_bundle, state_dir=tmp_path_factory.mktemp("state"))
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http


def _body(windows: np.ndarray) -> dict:
    return {"tensors": [{"shape": list(w.shape), "data": w.ravel().tolist()} for w in windows]}


def test_predict_takes_windows_as_arrays_and_answers_as_the_runtime_does(served, sensor_bundle, basic_motions):
    X = basic_motions["user"][0][[0, 10, 20, 30]]
    answer = served.post("/v1/predict", json=_body(X))
    assert answer.status_code == 200
    expected = Personalizer.from_bundle(sensor_bundle).predict(X)
    assert [p["label"] for p in answer.json()["predictions"]] == list(expected)


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        (
            _body(np.zeros((1, 5, 100))),
            "X[0]",
            "has shape (5, 100), but this bundle expects (6, any number of steps)",
        ),
        (_body(np.full((1, 6, 100), np.nan)), "X[0]", "NaN or inf"),
        (
            {"tensors": [{"shape": [6, 100], "data": [0.0] * 599}]},
            "tensors.0",
            "shape [6, 100] holds 600 values, but data has 599",
        ),
        (
            {"tensors": [{"shape": [1, MAX_TENSOR_VALUES + 1], "data": [0.0] * (MAX_TENSOR_VALUES + 1)}]},
            "tensors.0.data",
            "at most",
        ),
        ({"texts": ["walking"]}, "texts", "this bundle's modality is 'tensor'; send tensors instead"),
    ],
)
def test_a_wrong_array_body_is_refused_naming_what_was_expected(served, body, where, says):
    # Python's JSON writes NaN as the bare token some clients send; httpx's json= would refuse to.
    answer = served.post("/v1/predict", content=json.dumps(body), headers={"content-type": "application/json"})
    assert answer.status_code in (413, 422), answer.text
    assert says in answer.text and where in answer.text


SWAP_XY = [1, 0, 2, 4, 3, 5]  # the watch turned a quarter on the wrist: accelerometer and gyroscope x <-> y


def _examples(windows: np.ndarray, labels: list[str]) -> dict:
    return {"examples": [{"tensor": t, "label": y} for t, y in zip(_body(windows)["tensors"], labels)]}


def _labels(answer: httpx.Response) -> list[str]:
    return [p["label"] for p in answer.json()["predictions"]]


def test_examples_as_arrays_personalize_a_shifted_user_over_http(sensor_bundle, basic_motions, tmp_path):
    X, y = basic_motions["user"]
    X, y = X[:, SWAP_XY], np.array(y)
    own = np.concatenate([np.flatnonzero(y == label)[:5] for label in sorted(set(y))])
    rest = np.setdiff1d(np.arange(len(y)), own)
    settings = ServiceSettings.for_model(sensor_bundle, state_dir=tmp_path / "state")
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        before = np.mean(np.array(_labels(http.post("/v1/predict", json=_body(X[rest])))) == y[rest])
        stored = http.post("/v1/examples", json=_examples(X[own], list(y[own])))
        assert stored.status_code == 201 and stored.json() == {"stored": 20, "total": 20}

        done = wait_for_job(http, http.post("/v1/personalize", json={}).json()["id"])
        assert done["status"] == "succeeded", done["error"]
        assert done["result"]["accepted"] and done["result"]["head_version"] == 1, done["result"]["reason"]
        after = np.mean(np.array(_labels(http.post("/v1/predict", json=_body(X[rest])))) == y[rest])
    assert after >= before + 0.2, f"the user's 20 windows should lift held-out accuracy a lot: {before:.2f} -> {after:.2f}"


@pytest.mark.parametrize(
    ("example", "where", "says"),
    [
        ({"tensor": {"shape": [5, 100], "data": [0.0] * 500}}, "X[0]", "has shape (5, 100), but this bundle expects (6"),
        ({"tensor": {"shape": [6, 100], "data": [float("nan")] * 600}}, "X[0]", "NaN or inf"),
        ({"tensor": {"shape": [6, 100], "data": [0.0] * 599}}, "examples.0.tensor", "holds 600 values, but data has 599"),
        ({"text": "walking"}, "examples.0", "this bundle's modality is 'tensor'; send tensor instead"),
        ({"text": "walking", "tensor": {"shape": [1], "data": [0.0]}}, "examples.0", "exactly one of 'text' or 'tensor'"),
    ],
)
def test_a_wrong_example_is_refused_as_predict_refuses_it_and_nothing_is_stored(served, example, where, says):
    body = {"examples": [{**example, "label": "walking"}]}
    answer = served.post("/v1/examples", content=json.dumps(body), headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert says in answer.text and where in answer.text
    assert served.get("/v1/examples/count").json()["total"] == 0
