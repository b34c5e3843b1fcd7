"""Real HTTP servers for the serving tests: uvicorn on 127.0.0.1, a free port each."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TOKEN = "test-publish-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app: object) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yield its base URL; stop it at the end."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for_job(http: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    """Poll a personalization job until it has succeeded or failed; its last view."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish in {timeout}s")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A registry server with a publish token and open reading: (URL, storage root)."""
    from edgeft.registry.app import create_app
    from edgeft.registry.settings import RegistrySettings

    root = tmp_path / "registry"
    with running(create_app(RegistrySettings(root=root, publish_token=TOKEN))) as url:
        yield url, root
