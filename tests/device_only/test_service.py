"""The on-device service under Python 3.13: ``edgeft serve`` on loopback, personalized over HTTP by the numpy engine."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return answer.status, answer.read()


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


@pytest.fixture
def service(minilm_bundle: Path, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("edgeft")),
        "serve",
        str(minilm_bundle),
        "--state",
        str(tmp_path / "state"),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    try:
        while True:
            try:
                _get(f"{url}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("edgeft serve did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_examples_posted_then_personalized_change_the_served_head(service, reference):
    examples = [{"text": t, "label": y} for t, y in zip(reference["user_texts"], reference["user_labels"])]
    assert _post(f"{service}/v1/examples", {"examples": examples})["total"] == len(examples)
    job = _post(f"{service}/v1/personalize", {"epochs": 5, "accept": "always"})
    deadline = time.monotonic() + 120
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = json.loads(_get(f"{service}/v1/jobs/{job['id']}")[1])
    assert job["status"] == "succeeded", job.get("error")
    answer = _post(f"{service}/v1/predict", {"texts": reference["texts"][:3]})
    assert answer["head_version"] == 1 and len(answer["predictions"]) == 3


def test_docs_load_their_assets_from_the_service_itself(service):
    status, page = _get(f"{service}/docs")
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.decode())
    assert status == 200 and len(assets) >= 3
    assert all(asset.startswith("/") for asset in assets), assets
    assert all(_get(f"{service}{asset}")[0] == 200 for asset in assets)
