"""Drift in the service over real HTTP: events to poll, a loopback webhook, the retraining policy, a window that lasts."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from device_runtime.service.app import create_app
from device_runtime.service.settings import ServiceSettings
from edgeft.config import DriftConfig
from tests.device_runtime.test_drift import CHAT
from tests.serve.conftest import running, wait_for_job
from tests.serve.test_service import _examples

DRIFT = DriftConfig(window=40, min_window=30, check_every=20)


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict]]]:
    """An app's loopback endpoint that keeps every JSON body posted to it: (URL, bodies)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/drift", received
    finally:
        server.shutdown()


def _predict_in_batches(http: httpx.Client, texts: list[str], batch: int = 20) -> None:
    for start in range(0, len(texts), batch):
        answer = http.post("/v1/predict", json={"texts": texts[start : start + batch]})
        assert answer.status_code == 200, answer.text


def _first_event(http: httpx.Client, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events := http.get("/v1/drift/events", params={"after": 0}).json()["events"]:
            return events[0]
        time.sleep(0.05)
    raise TimeoutError("no drift event")


def test_drift_alerts_the_webhook_and_starts_a_job_and_the_window_outlives_swap_rollback_and_restart(
    minilm_bundle, bbc_splits, tmp_path
):
    settings = ServiceSettings.for_model(minilm_bundle, state_dir=tmp_path / "state", drift=DRIFT, retrain_on_drift=5)
    with webhook_receiver() as (hook, received):
        with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
            refused = http.put("/v1/drift/webhook", json={"url": "http://example.com/drift"})
            assert refused.status_code == 422 and "loopback" in refused.json()["detail"]
            assert http.put("/v1/drift/webhook", json={"url": hook}).json() == {"url": hook}
            http.post("/v1/examples", json=_examples(*bbc_splits["user"]))
            news = [t for t in bbc_splits["test"][0][::3] if len(t) <= settings.max_text_chars][:40]  # every topic, as at export
            _predict_in_batches(http, news)
            assert http.get("/v1/drift/events").json() == {"events": [], "last": 0}

            _predict_in_batches(http, CHAT)
            event = _first_event(http)
            assert event["report"]["drifted"] and event["report"]["decided_by"] == "mmd_test"
            assert event["webhook"] == "delivered" and received[0]["id"] == event["id"] and received[0]["event"] == "drift"
            assert event["policy"].startswith("started job") and "60 new labelled" in event["policy"]
            job = wait_for_job(http, event["job_id"])
            assert job["status"] == "succeeded" and job["trigger"] == "drift" and "accepted" in job["result"], job

            assert http.get("/v1/drift").json()["window"]["observed"] == 80, "kept across the job's swap"
            http.post("/v1/rollback", json={"to_version": 0})
            assert http.get("/v1/drift").json()["window"]["observed"] == 80, "kept across the rollback"
            _predict_in_batches(http, CHAT[:20])
        with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
            window = http.get("/v1/drift").json()["window"]
            assert window["observed"] == 100 and window["examples"] == 40, "kept across the restart"
            assert http.get("/v1/drift/webhook").json() == {"url": hook}


def test_the_policy_is_off_by_default_and_the_event_says_so(minilm_bundle, bbc_splits, tmp_path):
    settings = ServiceSettings.for_model(minilm_bundle, state_dir=tmp_path / "state", drift=DRIFT)
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        http.post("/v1/examples", json=_examples(*bbc_splits["user"]))
        _predict_in_batches(http, CHAT)
        event = _first_event(http)
        assert event["policy"] == "off" and event["job_id"] is None and event["webhook"] == "none registered"
        assert http.get("/healthz").json()["job_running"] is False
