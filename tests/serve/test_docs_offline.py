"""The service's /docs page works on a device without internet: Debian's Chromium, headless, reaches nothing but the service."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from device_runtime.service.app import create_app
from device_runtime.service.settings import ServiceSettings
from tests.serve.conftest import running

#: Chromium without its own background traffic; every host name but the service's fails to resolve.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (make setup installs it).")
    return found


def dump_dom(url: str, tmp_path: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and every URL the page requested (from Chromium's net log).

    The page's requests are those whose initiator is a web origin; Chromium's own
    (time sync, accounts) have none ("not an origin") and are not the page's doing.
    """
    net_log = tmp_path / "net-log.json"
    command = [
        chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--log-net-log={net_log}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [e.get("params", {}) for e in log["events"] if e["type"] == start]
    return result.stdout, sorted({job["url"] for job in jobs if "url" in job and job.get("initiator") != "not an origin"})


def test_docs_render_every_operation_from_local_assets_only(minilm_bundle, tmp_path):
    settings = ServiceSettings.for_model(minilm_bundle, state_dir=tmp_path / "state")
    with running(create_app(settings)) as url:
        dom, requested = dump_dom(f"{url}/docs", tmp_path)
    rendered = set(re.findall(r'data-path="([^"]+)"', dom))
    assert {"/v1/predict", "/v1/examples", "/v1/personalize", "/v1/jobs/{job_id}", "/v1/model", "/healthz"} <= rendered
    assert 'class="swagger-ui' in dom and "edgeft on-device service" in dom
    assert {f"{url}/openapi.json", f"{url}/static-offline-docs/swagger-ui-bundle.js"} <= set(requested)
    assert all(u.startswith(url) for u in requested), [u for u in requested if not u.startswith(url)]
