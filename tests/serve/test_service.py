"""The on-device service over real HTTP: a bundle pushed, pulled, personalized and served."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from device_runtime import Personalizer
from device_runtime.service.app import create_app
from device_runtime.service.settings import ServiceSettings
from edgeft.registry import client
from tests.serve.conftest import TOKEN, free_port, running, wait_for_job

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pulled_bundle(registry, minilm_bundle, tmp_path) -> Path:
    """The MiniLM bundle as a device has it: pushed to a registry, then pulled."""
    url, _ = registry
    client.push(minilm_bundle, url, TOKEN)
    return client.pull("minilm-bbc", url, tmp_path / "device").path


def _examples(texts: list[str], labels: list[str]) -> dict:
    return {"examples": [{"text": t, "label": y} for t, y in zip(texts, labels)]}


def test_personalize_over_http_while_predictions_keep_coming(pulled_bundle, bbc_splits, tmp_path):
    texts, labels = bbc_splits["user"]
    test_texts, _ = bbc_splits["test"]
    settings = ServiceSettings.for_model(pulled_bundle, state_dir=tmp_path / "state")
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/healthz").json() == {"status": "ok", "head_version": 0, "job_running": False}
        stored = http.post("/v1/examples", json=_examples(texts, labels))
        assert stored.status_code == 201 and stored.json() == {"stored": len(texts), "total": len(texts)}
        assert http.get("/v1/examples/count").json()["by_label"] == {label: 12 for label in sorted(set(labels))}

        job = http.post("/v1/personalize", json={"epochs": 40})
        assert job.status_code == 202 and job.json()["status"] in ("queued", "running")
        second = http.post("/v1/personalize", json={})
        assert second.status_code == 409 and "still running" in second.json()["detail"]

        served_during_job = []
        while http.get(f"/v1/jobs/{job.json()['id']}").json()["status"] in ("queued", "running"):
            answer = http.post("/v1/predict", json={"texts": test_texts[:4]})
            assert answer.status_code == 200
            served_during_job.append(answer.json()["head_version"])
        assert served_during_job[0] == 0, "while the job trains, the current (shipped) head answers"
        assert set(served_during_job) <= {0, 1}

        done = wait_for_job(http, job.json()["id"])
        assert done["status"] == "succeeded", done["error"]
        assert done["result"]["head_version"] == 1 and done["result"]["examples"] == len(texts)
        assert done["stage"] == "train" and done["done"] == done["total"] == 40

        after = http.post("/v1/predict", json={"texts": test_texts[:3]}).json()
        assert after["head_version"] == 1 and len(after["predictions"]) == 3
        assert set(after["predictions"][0]["probabilities"]) == set(labels)
        model = http.get("/v1/model").json()
        assert model["head_version"] == 1 and model["bundle"]["name"] == "minilm-bbc" and model["examples"] == len(texts)
        predictions = [p["label"] for p in after["predictions"]]

    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        again = http.post("/v1/predict", json={"texts": test_texts[:3]}).json()
        assert again["head_version"] == 1, "the accepted head survives a restart"
        assert [p["label"] for p in again["predictions"]] == predictions


def test_a_killed_service_keeps_every_example_posted_before(pulled_bundle, bbc_splits, tmp_path):
    texts, labels = bbc_splits["user"]
    state = tmp_path / "state"

    def start() -> tuple[subprocess.Popen, str]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "edgeft", "serve", str(pulled_bundle), "--state", str(state), "--port", str(port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    return process, url
            except httpx.TransportError:
                time.sleep(0.1)
        process.kill()
        raise TimeoutError("edgeft serve did not start")

    process, url = start()
    try:
        for start_at in range(0, 30, 10):
            assert (
                httpx.post(
                    f"{url}/v1/examples", json=_examples(texts[start_at : start_at + 10], labels[start_at : start_at + 10])
                ).status_code
                == 201
            )
        process.send_signal(signal.SIGKILL)  # no shutdown, no flush: the hardest restart
        process.wait(timeout=30)

        process, url = start()
        assert httpx.get(f"{url}/v1/examples/count").json()["total"] == 30
        assert httpx.post(f"{url}/v1/examples", json=_examples(texts[30:], labels[30:])).json()["total"] == len(texts)
    finally:
        process.kill()
        process.wait(timeout=30)


def test_errors_are_typed_json_naming_the_field_at_fault(pulled_bundle, tmp_path):
    settings = ServiceSettings.for_model(pulled_bundle, state_dir=tmp_path / "state", max_body_bytes=4096)
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        new = [{"text": "x", "label": f"weather{i}"} for i in range(5)]  # one more than the bundle's 4 spare slots
        unknown = http.post("/v1/examples", json={"examples": [{"text": "hi", "label": "sports"}, *new], "new_labels": "add"})
        assert unknown.status_code == 422
        assert unknown.json()["fields"] == [
            {
                "field": "examples.5.label",
                "message": "unknown label 'weather4'; this model's labels are business, entertainment, politics, sports, tech "
                "and its 4 spare output slot(s) are taken (export the bundle with more: --spare-labels)",
            }
        ]
        assert "unknown label 'weather4'" in unknown.json()["detail"]
        assert http.get("/v1/examples/count").json()["total"] == 0, "a refused request stores nothing"

        images = http.post("/v1/predict", json={"images": [{"shape": [1, 2], "data": [0, 255]}]})
        assert images.status_code == 422 and images.json()["fields"][0]["field"] == "images"
        missing = http.post("/v1/predict", json={"text": ["typo in the field name"]})
        assert missing.status_code == 422 and "text" in {f["field"] for f in missing.json()["fields"]}
        bad_pixels = http.post("/v1/predict", json={"images": [{"shape": [3, 3], "data": [1]}]})
        assert bad_pixels.status_code == 422 and bad_pixels.json()["fields"][0]["field"] == "images.0"

        not_json = http.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
        assert not_json.status_code == 422 and not_json.json()["fields"][0]["field"] == "body"
        too_few = http.post("/v1/personalize", json={})
        assert too_few.status_code == 422 and too_few.json()["fields"][0]["field"] == "examples"
        assert http.get("/v1/jobs/nope").status_code == 404


def test_bodies_over_the_limit_get_413_whether_declared_or_streamed(pulled_bundle, tmp_path):
    settings = ServiceSettings.for_model(pulled_bundle, state_dir=tmp_path / "state", max_body_bytes=4096)
    body = json.dumps({"texts": ["x" * 5000]}).encode()
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        declared = http.post("/v1/predict", content=body, headers={"content-type": "application/json"})
        # An iterator body goes out chunked, with no content-length to refuse it by.
        streamed = http.post(
            "/v1/predict", content=iter([body[:3000], body[3000:]]), headers={"content-type": "application/json"}
        )
        small = http.post(
            "/v1/predict", content=iter([b'{"texts": ', b'["a short text"]}']), headers={"content-type": "application/json"}
        )
    for answer in (declared, streamed):
        assert answer.status_code == 413 and answer.json()["error"] == "PayloadTooLargeError"
    assert small.status_code == 200 and len(small.json()["predictions"]) == 1


def test_rollback_serves_an_earlier_head_and_drift_reports_on_what_was_served(pulled_bundle, bbc_splits, tmp_path):
    texts, labels = bbc_splits["user"]
    test_texts, _ = bbc_splits["test"]
    settings = ServiceSettings.for_model(pulled_bundle, state_dir=tmp_path / "state")
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        shipped = http.post("/v1/predict", json={"texts": test_texts[:5]}).json()["predictions"]
        http.post("/v1/examples", json=_examples(texts, labels))
        job = wait_for_job(http, http.post("/v1/personalize", json={"epochs": 5, "accept": "always"}).json()["id"])
        assert job["result"]["accepted"] and http.get("/healthz").json()["head_version"] == 1

        unknown = http.post("/v1/rollback", json={"to_version": 7})
        assert unknown.status_code == 422 and "no head version 7" in unknown.json()["detail"]
        back = http.post("/v1/rollback", json={})  # the version before the current one
        assert back.status_code == 200 and back.json()["head_version"] == 0
        assert [v["version"] for v in back.json()["versions"]] == [0, 1]
        assert http.post("/v1/predict", json={"texts": test_texts[:5]}).json()["predictions"] == shipped

        drift = http.get("/v1/drift", params={"threshold": 0.4})
        assert drift.status_code == 200 and drift.json()["threshold"] == 0.4
        assert drift.json()["examples_seen"] >= 5 and isinstance(drift.json()["drifted"], bool)

    with running(create_app(settings)) as url:
        assert httpx.get(f"{url}/healthz").json()["head_version"] == 0, "a rollback survives a restart"


def test_an_image_bundle_predicts_uint8_pixels_sent_as_lists_or_base64(effnet_bundle, fashion, tmp_path):
    images, _ = fashion["test"]
    grey = images[:3]
    expected = list(Personalizer.from_bundle(effnet_bundle).predict(grey))  # the same batch: INT8 scales are per batch
    settings = ServiceSettings.for_model(effnet_bundle, state_dir=tmp_path / "state")
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        as_lists = [{"shape": list(i.shape), "data": i.ravel().tolist()} for i in grey]
        as_bytes = [{"shape": list(i.shape), "base64": base64.b64encode(i.tobytes()).decode()} for i in grey]
        for body in (as_lists, as_bytes):
            answer = http.post("/v1/predict", json={"images": body})
            assert answer.status_code == 200, answer.text
            assert [p["label"] for p in answer.json()["predictions"]] == expected
        short = http.post("/v1/predict", json={"images": [{"shape": [28, 28], "base64": base64.b64encode(b"xy").decode()}]})
        assert short.status_code == 422 and short.json()["fields"][0]["field"] == "images.0.base64"
        texts = http.post("/v1/predict", json={"texts": ["a text to an image model"]})
        assert texts.status_code == 422 and "modality is 'image'" in texts.json()["detail"]


def test_openapi_describes_every_endpoint(pulled_bundle, tmp_path):
    settings = ServiceSettings.for_model(pulled_bundle, state_dir=tmp_path / "state")
    with running(create_app(settings)) as url:
        paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert set(paths) == {
        "/v1/predict",
        "/v1/examples",
        "/v1/examples/count",
        "/v1/personalize",
        "/v1/jobs/{job_id}",
        "/v1/model",
        "/v1/rollback",
        "/v1/drift",
        "/v1/drift/events",
        "/v1/drift/webhook",
        "/healthz",
    }
    assert "422" in paths["/v1/examples"]["post"]["responses"] and "409" in paths["/v1/personalize"]["post"]["responses"]


def test_one_jobs_overrides_do_not_carry_over_to_the_next(pulled_bundle, bbc_splits, tmp_path):
    texts, labels = bbc_splits["user"]
    names = sorted(set(labels))
    shuffled = [names[(names.index(v) + 1) % len(names)] for v in labels]  # every label wrong: the guard refuses it
    settings = ServiceSettings.for_model(pulled_bundle, state_dir=tmp_path / "state")
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.post("/v1/examples", json=_examples(texts, shuffled)).status_code == 201
        first = wait_for_job(http, http.post("/v1/personalize", json={"accept": "always", "epochs": 1, "lr": 1e-6}).json()["id"])
        assert first["result"]["accepted"] and first["result"]["config"]["accept"] == "always"
        later = wait_for_job(http, http.post("/v1/personalize", json={}).json()["id"])
        assert later["status"] == "succeeded", later["error"]
        assert later["result"]["config"]["accept"] == "if_better" and not later["result"]["accepted"]
        assert later["result"]["labels_checked"] and http.get("/healthz").json()["head_version"] == 1


def test_a_new_label_through_the_service(pulled_bundle, bbc_splits, tmp_path):
    texts, labels = bbc_splits["user"]
    mine = ["weather" if label == "tech" else label for label in labels]
    settings = ServiceSettings.for_model(pulled_bundle, state_dir=tmp_path / "state")
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.post("/v1/examples", json=_examples(texts, mine)).status_code == 422, "a new label only when asked"
        assert http.post("/v1/examples", json={**_examples(texts, mine), "new_labels": "add"}).status_code == 201
        refused = wait_for_job(http, http.post("/v1/personalize", json={}).json()["id"])
        assert refused["status"] == "failed" and 'new_labels="add"' in refused["error"]
        job = wait_for_job(http, http.post("/v1/personalize", json={"new_labels": "add"}).json()["id"])
        assert job["status"] == "succeeded" and job["result"]["added_labels"] == ["weather"], job
        tech = [t for t, y in zip(*bbc_splits["test"]) if y == "tech"][:6]
        answer = http.post("/v1/predict", json={"texts": tech}).json()
        assert "weather" in answer["predictions"][0]["probabilities"]
        assert any(p["label"] == "weather" for p in answer["predictions"])
