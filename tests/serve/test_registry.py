"""The registry and its client, over real HTTP: publish, list, pull, verify, resume, refuse."""

from __future__ import annotations

import io
import json
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from edgeft.bundle import Bundle
from edgeft.errors import BundleError
from edgeft.registry import client
from edgeft.registry.app import create_app
from edgeft.registry.errors import NotFoundError, PayloadTooLargeError, UnauthorizedError, VersionExistsError
from edgeft.registry.settings import RegistrySettings
from tests.serve.conftest import TOKEN, running


class Interrupted(Exception):
    """Stands in for a killed process or a dropped connection."""


def test_push_then_pull_installs_a_verified_bundle(registry, minilm_bundle, tmp_path):
    url, _ = registry
    answer = client.push(minilm_bundle, url, TOKEN)
    assert answer["name"] == "minilm-bbc" and answer["files"] >= 6

    listing = httpx.get(f"{url}/v1/bundles").json()
    version = Bundle.load(minilm_bundle).manifest.version
    assert listing["bundles"][0]["name"] == "minilm-bbc" and listing["bundles"][0]["latest"] == version

    result = client.pull("minilm-bbc", url, tmp_path / "device")
    assert result.path == tmp_path / "device" / "minilm-bbc" / version
    assert Bundle.load(result.path).fingerprint == Bundle.load(minilm_bundle).fingerprint
    assert client.installed_path(tmp_path / "device", "minilm-bbc") == result.path
    assert not (tmp_path / "device" / client.PARTIAL / f"minilm-bbc@{version}").exists()


def test_two_pulls_at_once_download_the_bundle_once(registry, minilm_bundle, tmp_path):
    url, _ = registry
    client.push(minilm_bundle, url, TOKEN)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: client.pull("minilm-bbc", url, tmp_path / "device"), range(2)))
    assert sorted(r.downloaded_bytes > 0 for r in results) == [False, True], "the second pull waited and found it installed"
    assert results[0].path == results[1].path and Bundle.load(results[0].path)


def test_versions_are_immutable_and_publishing_needs_the_token(registry, minilm_bundle):
    url, _ = registry
    with pytest.raises(UnauthorizedError, match="401"):
        client.push(minilm_bundle, url, "wrong-token")
    client.push(minilm_bundle, url, TOKEN)
    with pytest.raises(VersionExistsError, match="409.*immutable"):
        client.push(minilm_bundle, url, TOKEN)


def test_a_tampered_file_on_the_registry_is_refused_by_pull(registry, minilm_bundle, tmp_path):
    url, root = registry
    client.push(minilm_bundle, url, TOKEN)
    version = Bundle.load(minilm_bundle).manifest.version
    stored = root / "minilm-bbc" / version / "bundle" / "tokenizer.json"
    stored.write_bytes(stored.read_bytes().replace(b"[UNK]", b"[UNX]", 1))

    with pytest.raises(BundleError, match="tokenizer.json does not match its sha256"):
        client.pull(f"minilm-bbc@{version}", url, tmp_path / "device")
    assert not (tmp_path / "device" / "minilm-bbc" / version).exists()
    assert not (tmp_path / "device" / "minilm-bbc" / client.CURRENT).exists()


def test_an_interrupted_download_resumes_with_a_range_request(registry, minilm_bundle, tmp_path):
    url, _ = registry
    client.push(minilm_bundle, url, TOKEN)
    device = tmp_path / "device"
    backbone_size = (minilm_bundle / "backbone.onnx").stat().st_size

    def die_halfway(path: str, done: int, size: int) -> None:
        if path == "backbone.onnx" and done >= size // 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        client.pull("minilm-bbc", url, device, progress=die_halfway)
    assert not (device / "minilm-bbc" / client.CURRENT).exists(), "nothing is installed after an interruption"

    result = client.pull("minilm-bbc", url, device)
    assert "backbone.onnx" in result.resumed
    total = sum(e.size for e in Bundle.load(minilm_bundle).manifest.files.values())
    assert result.downloaded_bytes <= total - backbone_size // 2
    Bundle.load(result.path)


def test_a_new_version_keeps_the_previous_one_and_its_personalized_heads(registry, minilm_bundle, tmp_path):
    url, _ = registry
    client.push(minilm_bundle, url, TOKEN)
    device = tmp_path / "device"
    first = client.pull("minilm-bbc", url, device).path
    head = device / "heads" / "user-1" / "state.json"  # a personalized head saved by the device
    head.parent.mkdir(parents=True)
    head.write_text("{}")

    second_bundle = tmp_path / "v2"
    _copy_with_version(minilm_bundle, second_bundle, "9.9.9")
    client.push(second_bundle, url, TOKEN)
    second = client.pull("minilm-bbc", url, device).path

    assert second.name == "9.9.9" and client.installed_path(device, "minilm-bbc") == second
    Bundle.load(first)
    assert head.read_text() == "{}"


def test_pull_never_replaces_a_folder_that_is_not_a_bundle(registry, minilm_bundle, tmp_path):
    url, _ = registry
    named_like_a_state = tmp_path / "v-state"
    _copy_with_version(minilm_bundle, named_like_a_state, "1.0.0-state")
    client.push(named_like_a_state, url, TOKEN)
    state = tmp_path / "device" / "minilm-bbc" / "1.0.0-state"  # where `edgeft serve` keeps 1.0.0's state
    state.mkdir(parents=True)
    (state / "examples.sqlite").write_bytes(b"the user's examples")

    with pytest.raises(BundleError, match=r"is not a bundle \(no manifest.json\).*Nothing was installed"):
        client.pull("minilm-bbc@1.0.0-state", url, tmp_path / "device")
    assert (state / "examples.sqlite").read_bytes() == b"the user's examples"


def test_clear_json_errors_for_bad_requests(registry, minilm_bundle):
    url, _ = registry
    client.push(minilm_bundle, url, TOKEN)
    auth = {"authorization": f"Bearer {TOKEN}"}
    version = Bundle.load(minilm_bundle).manifest.version

    missing = httpx.get(f"{url}/v1/bundles/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"
    escape = httpx.get(f"{url}/v1/bundles/minilm-bbc/versions/{version}/files/head/..%2F..%2Fpublished.json")
    # The encoded slashes reach the server as head/../../published.json: refused by its path check, not merely not found.
    assert escape.status_code == 400 and "Invalid file path 'head/../../published.json'" in escape.json()["detail"]
    bad_name = httpx.put(f"{url}/v1/bundles/..evil/versions/1", content=b"x", headers=auth)
    assert bad_name.status_code == 400 and "Invalid bundle name" in bad_name.json()["detail"]
    no_token = httpx.put(f"{url}/v1/bundles/x/versions/1", content=b"x")
    assert no_token.status_code == 401 and no_token.headers["www-authenticate"] == "Bearer"

    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w") as tar:
        member = tarfile.TarInfo("backbone.onnx")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(member)
    refused = httpx.put(f"{url}/v1/bundles/evil/versions/1", content=link.getvalue(), headers=auth)
    assert refused.status_code == 400 and "link" in refused.json()["detail"]


def test_uploads_over_the_size_limit_get_413(tmp_path, minilm_bundle):
    settings = RegistrySettings(root=tmp_path / "registry", publish_token=TOKEN, max_upload_bytes=1024)
    with running(create_app(settings)) as url:
        with pytest.raises(PayloadTooLargeError, match="413.*at most 1024 bytes"):
            client.push(minilm_bundle, url, TOKEN)
        raw = httpx.put(
            f"{url}/v1/bundles/minilm-bbc/versions/1", content=b"x" * 2048, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert raw.status_code == 413 and raw.json()["error"] == "PayloadTooLargeError"


def test_reading_can_require_a_token(tmp_path, minilm_bundle):
    settings = RegistrySettings(root=tmp_path / "registry", publish_token=TOKEN, read_token="reader")
    with running(create_app(settings)) as url:
        client.push(minilm_bundle, url, TOKEN)
        with pytest.raises(UnauthorizedError, match="token to read"):
            client.pull("minilm-bbc", url, tmp_path / "device")
        with pytest.raises(NotFoundError):
            client.pull("other", url, tmp_path / "device", token="reader")
        assert client.pull("minilm-bbc", url, tmp_path / "device", token="reader").downloaded_bytes > 0


def test_ranged_reads_follow_http_semantics(registry, minilm_bundle):
    url, _ = registry
    client.push(minilm_bundle, url, TOKEN)
    version = Bundle.load(minilm_bundle).manifest.version
    file_url = f"{url}/v1/bundles/minilm-bbc/versions/{version}/files/tokenizer.json"
    whole = (minilm_bundle / "tokenizer.json").read_bytes()
    part = httpx.get(file_url, headers={"range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(whole)}"
    assert httpx.get(file_url, headers={"range": f"bytes={len(whole)}-"}).status_code == 416


def test_openapi_describes_every_registry_endpoint(registry):
    url, _ = registry
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert {
        "/v1/bundles",
        "/v1/bundles/{name}",
        "/v1/bundles/{name}/versions/{version}",
        "/v1/bundles/{name}/versions/{version}/manifest",
        "/v1/bundles/{name}/versions/{version}/files/{path}",
    } <= set(paths)


def _copy_with_version(source: Path, dest: Path, version: str) -> None:
    import shutil

    shutil.copytree(source, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["version"] = version
    (dest / "manifest.json").write_text(json.dumps(manifest))
