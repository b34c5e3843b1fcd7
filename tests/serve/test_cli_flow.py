"""The push/pull flow through the `edgeft` command line against a real `edgeft registry` process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import TOKEN, free_port

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "EDGEFT_REGISTRY_TOKEN": TOKEN}


def edgeft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeft", *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)


@pytest.fixture
def registry_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root, port = tmp_path / "registry", free_port()
    process = subprocess.Popen([sys.executable, "-m", "edgeft", "registry", "--root", str(root), "--port", str(port)],
                               cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url, root
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_push_pull_and_a_tampered_file_refused_by_the_pull_command(registry_process, minilm_bundle, tmp_path):
    url, root = registry_process
    pushed = edgeft("push", str(minilm_bundle), "--registry", url)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith("published minilm-bbc@")
    again = edgeft("push", str(minilm_bundle), "--registry", url)
    assert again.returncode == 1 and "409" in again.stderr and "immutable" in again.stderr

    pulled = edgeft("pull", "minilm-bbc", "--registry", url, "--into", str(tmp_path / "device"))
    assert pulled.returncode == 0, pulled.stderr
    assert "installed minilm-bbc@" in pulled.stdout

    version = pulled.stdout.split("@")[1].split()[0]
    stored = root / "minilm-bbc" / version / "bundle" / "head" / "checkpoint"
    data = stored.read_bytes()
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one flipped byte, same size
    refused = edgeft("pull", f"minilm-bbc@{version}", "--registry", url, "--into", str(tmp_path / "other-device"))
    assert refused.returncode == 1
    assert "head/checkpoint does not match its sha256" in refused.stderr and "Nothing was installed" in refused.stderr
    assert not (tmp_path / "other-device" / "minilm-bbc" / version).exists()


def test_the_pull_client_imports_no_http_or_ml_framework():
    code = ("import sys, edgeft.registry.client; "
            "print(sorted(m for m in ('fastapi', 'httpx', 'starlette', 'torch', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
