"""The push/pull flow through the `edgeft` command line against a real `edgeft registry` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgeft.bundle import Bundle
from edgeft.registry import client
from edgeft.registry.app import create_app
from edgeft.registry.settings import RegistrySettings
from edgeft.registry.storage import LocalStorage
from tests.serve.conftest import TOKEN, free_port, running

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "EDGEFT_REGISTRY_TOKEN": TOKEN}


def edgeft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeft", *args], check=False, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def registry_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root, port = tmp_path / "registry", free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeft", "registry", "--root", str(root), "--port", str(port)],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


class SlowStorage(LocalStorage):
    """Local storage that serves file bytes slowly, so a pull can be killed mid-file."""

    def read(self, name: str, version: str, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        for block in super().read(name, version, path, start, end):
            time.sleep(0.005)
            yield block


def test_a_killed_pull_resumes_where_it_stopped(minilm_bundle, tmp_path):
    root, device = tmp_path / "registry", tmp_path / "device"
    settings = RegistrySettings(root=root, publish_token=TOKEN)
    with running(create_app(settings, SlowStorage(root))) as url:
        client.push(minilm_bundle, url, TOKEN)
        version = Bundle.load(minilm_bundle).manifest.version
        partial = device / client.PARTIAL / f"minilm-bbc@{version}" / "backbone.onnx"
        size = (minilm_bundle / "backbone.onnx").stat().st_size
        process = subprocess.Popen(
            [sys.executable, "-m", "edgeft", "pull", "minilm-bbc", "--registry", url, "--into", str(device)],
            cwd=REPO,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not (partial.is_file() and partial.stat().st_size > size // 10):
            assert time.monotonic() < deadline and process.poll() is None, "the pull ended before it could be killed"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert 0 < partial.stat().st_size < size
        assert not (device / "minilm-bbc" / version).exists(), "a killed pull installs nothing"

        resumed = edgeft("pull", "minilm-bbc", "--registry", url, "--into", str(device))
        assert resumed.returncode == 0, resumed.stderr
        assert "resumed 1 file(s)" in resumed.stdout
        assert Bundle.load(device / "minilm-bbc" / version).fingerprint == Bundle.load(minilm_bundle).fingerprint


def test_the_pull_client_imports_no_http_or_ml_framework():
    code = (
        "import sys, edgeft.registry.client; "
        "print(sorted(m for m in ('fastapi', 'httpx', 'starlette', 'torch', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
