"""The service refuses what the bundle cannot take, forgets examples on request, keeps job records across a kill,
validates webhooks (and outlives a bad one), and both servers refuse a port that is none."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from device_runtime.service.alerts import WEBHOOK_META
from device_runtime.service.app import create_app
from device_runtime.service.jobs import KEEP_FINISHED_JOBS
from device_runtime.service.settings import ServiceSettings
from device_runtime.service.store import ExampleStore
from edgeft.cli import main
from tests.serve.conftest import running


@pytest.fixture
def settings(minilm_bundle: Path, tmp_path: Path) -> ServiceSettings:
    return ServiceSettings.for_model(minilm_bundle, state_dir=tmp_path / "state")


def _example(label: str, text: str = "a text") -> dict:
    return {"examples": [{"text": text, "label": label}]}


def test_an_unknown_label_is_a_422_naming_the_way_to_add_it_and_nothing_is_stored(settings) -> None:
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        refused = http.post("/v1/examples", json=_example("weather"))
        assert refused.status_code == 422
        assert refused.json()["fields"][0]["field"] == "examples.0.label"
        assert "unknown label 'weather'" in refused.json()["detail"] and '"new_labels": "add"' in refused.json()["detail"]
        assert http.get("/v1/examples/count").json()["total"] == 0
        added = http.post("/v1/examples", json={**_example("weather"), "new_labels": "add"})
        assert added.status_code == 201 and added.json()["total"] == 1


@pytest.mark.parametrize("field", ["text", "label"])
def test_a_lone_surrogate_in_an_example_is_a_422(settings, field: str) -> None:
    example = {"text": "a text", "label": "sports", field: "\ud800"}
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        body = json.dumps({"examples": [example], "new_labels": "add"})  # ASCII: the surrogate travels escaped
        refused = http.post("/v1/examples", content=body, headers={"content-type": "application/json"})
        assert refused.status_code == 422 and refused.json()["fields"][0]["field"] == f"examples.0.{field}"
        assert http.get("/v1/examples/count").json()["total"] == 0


def test_stored_examples_can_be_deleted_by_label_or_all(settings) -> None:
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        for label in ("sports", "sports", "tech"):
            http.post("/v1/examples", json=_example(label)).raise_for_status()
        assert http.delete("/v1/examples", params={"label": "sports"}).json() == {"deleted": 2, "total": 1}
        assert http.delete("/v1/examples").json() == {"deleted": 1, "total": 0}


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/a b", "http://127.0.0.1:99999/x", "http://localhost:port/", "http://127.0.0.1/\n", "http://127.0.0.1/é"],
)
def test_a_webhook_that_is_no_url_is_a_422_and_not_kept(settings, url: str) -> None:
    with running(create_app(settings)) as base, httpx.Client(base_url=base, timeout=60) as http:
        refused = http.put("/v1/drift/webhook", json={"url": url})
        assert refused.status_code == 422 and refused.json()["fields"][0]["field"] == "url"
        assert http.get("/v1/drift/webhook").json() == {"url": None}


def test_the_alert_thread_outlives_a_bad_webhook_stored_before(settings) -> None:
    ExampleStore(settings.examples_db).set_meta(WEBHOOK_META, "http://127.0.0.1:9/a b")  # as an older version kept it
    app = create_app(settings)
    with running(app) as base:
        for n in range(2):
            app.state.alerts.notify({"drifted": True, "n": n})
        deadline = time.monotonic() + 30
        while len(app.state.alerts.events()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        events = httpx.get(f"{base}/v1/drift/events").json()["events"]
    assert [e["report"]["n"] for e in events] == [0, 1]
    assert all(e["webhook"].startswith("failed:") for e in events)


def test_a_job_running_when_the_service_was_killed_reads_as_failed_after_the_restart(settings) -> None:
    store = ExampleStore(settings.examples_db)
    record = {"id": "abc123", "mode": "fit", "overrides": {}, "status": "running", "stage": "train", "done": 3, "total": 9,
              "loss": 1.0, "result": None, "error": None, "created": "2026-01-01T00:00:00+00:00", "finished": None}  # fmt: skip
    store.save_job("abc123", record, KEEP_FINISHED_JOBS)
    store.close()
    with running(create_app(settings)) as url:
        job = httpx.get(f"{url}/v1/jobs/abc123").json()
    assert job["status"] == "failed" and "the service stopped while this job ran" in job["error"]


def test_a_finished_job_is_still_there_after_a_restart(settings, bbc_splits) -> None:
    texts, labels = bbc_splits["server"]
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        http.post("/v1/examples", json={"examples": [{"text": t, "label": y} for t, y in zip(texts, labels)]}).raise_for_status()
        job_id = http.post("/v1/personalize", json={"epochs": 1}).json()["id"]
        while http.get(f"/v1/jobs/{job_id}").json()["status"] not in ("succeeded", "failed"):
            time.sleep(0.1)
        finished = http.get(f"/v1/jobs/{job_id}").json()
    with running(create_app(settings)) as url:
        assert httpx.get(f"{url}/v1/jobs/{job_id}").json() == finished


@pytest.mark.parametrize("port", ["0", "99999", "-1", "http"])
@pytest.mark.parametrize("command", [["serve", "BUNDLE"], ["registry", "--root", "ROOT"]])
def test_a_port_outside_1_to_65535_is_a_usage_error(command, port, minilm_bundle, tmp_path, capsys) -> None:
    argv = [str(minilm_bundle) if a == "BUNDLE" else str(tmp_path) if a == "ROOT" else a for a in command]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--port", port])
    assert exit_.value.code == 2
    assert "is not a TCP port; give a number from 1 to 65535" in capsys.readouterr().err
