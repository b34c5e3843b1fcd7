"""Signed bundles through the registry: a device with a trust policy installs only what its publisher signed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeft import layout
from edgeft.bundle import file_sha256
from edgeft.cli import main
from edgeft.registry import client
from edgeft.signing import TRUST_ENV, SignatureError, UnverifiedSignatureWarning, create_key, sign_bundle, trust_key
from tests.serve.conftest import TOKEN


@pytest.fixture
def signed(minilm_bundle: Path, tmp_path: Path) -> dict[str, Path]:
    """Version 1.0.0 and 2.0.0 of the session bundle, signed by a key the device's trust file lists."""
    key, public = create_key(tmp_path / "keys", "publisher")
    trust = tmp_path / "trust.json"
    trust_key(trust, public)
    bundles = {}
    for version in ("1.0.0", "2.0.0"):
        folder = bundles[version] = tmp_path / f"bundle-{version}"
        shutil.copytree(minilm_bundle, folder)
        manifest = json.loads((folder / layout.MANIFEST).read_text())
        (folder / layout.MANIFEST).write_text(json.dumps({**manifest, "version": version}))
        sign_bundle(folder, key)
    return {"trust": trust, "key": key, **bundles}


def _nothing_installed(device: Path, version: str) -> bool:
    return not (device / "minilm-bbc" / version).exists()


def test_a_signed_bundle_installs_with_its_signature(registry, signed, tmp_path):
    url, _ = registry
    client.push(signed["1.0.0"], url, TOKEN)
    result = client.pull("minilm-bbc@1.0.0", url, tmp_path / "device", trust=signed["trust"])
    assert (result.path / layout.SIGNATURE).read_bytes() == (signed["1.0.0"] / layout.SIGNATURE).read_bytes()


def test_labels_tampered_on_the_registry_disk_are_refused(registry, signed, tmp_path):
    url, root = registry
    client.push(signed["1.0.0"], url, TOKEN)
    stored = root / "minilm-bbc" / "1.0.0" / "bundle" / layout.MANIFEST
    manifest = json.loads(stored.read_text())
    stored.write_text(json.dumps({**manifest, "labels": manifest["labels"][::-1]}))

    with pytest.raises(SignatureError, match="the manifest was altered"):
        client.pull("minilm-bbc@1.0.0", url, tmp_path / "device", trust=signed["trust"])
    assert _nothing_installed(tmp_path / "device", "1.0.0")


def test_a_stored_file_rewritten_with_a_matching_sha_is_refused(registry, signed, tmp_path):
    url, root = registry
    client.push(signed["1.0.0"], url, TOKEN)
    stored = root / "minilm-bbc" / "1.0.0" / "bundle"
    tokenizer = stored / layout.TOKENIZER
    tokenizer.write_bytes(tokenizer.read_bytes().replace(b"[UNK]", b"[UNX]", 1))
    manifest = json.loads((stored / layout.MANIFEST).read_text())
    manifest["files"][layout.TOKENIZER] = {"size": tokenizer.stat().st_size, "sha256": file_sha256(tokenizer)}
    (stored / layout.MANIFEST).write_text(json.dumps(manifest))

    with pytest.raises(SignatureError, match="the manifest was altered"):
        client.pull("minilm-bbc@1.0.0", url, tmp_path / "device", trust=signed["trust"])
    assert _nothing_installed(tmp_path / "device", "1.0.0")


def test_a_bundle_signed_with_another_key_is_refused(registry, signed, tmp_path):
    url, _ = registry
    intruder, _ = create_key(tmp_path / "intruder", "intruder")
    sign_bundle(signed["1.0.0"], intruder)
    client.push(signed["1.0.0"], url, TOKEN)
    with pytest.raises(SignatureError, match="which this device does not trust"):
        client.pull("minilm-bbc@1.0.0", url, tmp_path / "device", trust=signed["trust"])
    assert _nothing_installed(tmp_path / "device", "1.0.0")


def test_an_older_version_than_the_installed_one_is_refused(registry, signed, tmp_path):
    url, _ = registry
    for version in ("1.0.0", "2.0.0"):
        client.push(signed[version], url, TOKEN)
    device = tmp_path / "device"
    client.pull("minilm-bbc@2.0.0", url, device, trust=signed["trust"])
    with pytest.raises(SignatureError, match=r"1.0.0 is older than the installed minilm-bbc@2.0.0"):
        client.pull("minilm-bbc@1.0.0", url, device, trust=signed["trust"])
    assert _nothing_installed(device, "1.0.0")
    assert client.installed_path(device, "minilm-bbc").name == "2.0.0"


def test_pull_on_the_command_line_refuses_an_unsigned_bundle(registry, minilm_bundle, signed, tmp_path, capsys):
    url, _ = registry
    client.push(minilm_bundle, url, TOKEN)
    code = main(["pull", "minilm-bbc", "--registry", url, "--into", str(tmp_path / "device"), "--trust", str(signed["trust"])])
    assert code == 1
    assert "is not signed" in capsys.readouterr().err
    assert not (tmp_path / "device" / "minilm-bbc").exists()


def test_pull_applies_the_trust_file_named_by_the_environment(registry, minilm_bundle, signed, tmp_path, monkeypatch):
    url, _ = registry
    client.push(minilm_bundle, url, TOKEN)
    monkeypatch.setenv(TRUST_ENV, str(signed["trust"]))
    with pytest.raises(SignatureError, match="is not signed"):
        client.pull("minilm-bbc@1.0.0", url, tmp_path / "device")
    assert _nothing_installed(tmp_path / "device", "1.0.0")


def test_pull_without_a_policy_reports_the_signature_as_unverified(registry, signed, tmp_path):
    url, _ = registry
    client.push(signed["1.0.0"], url, TOKEN)
    with pytest.warns(UnverifiedSignatureWarning, match="not verified"):
        client.pull("minilm-bbc@1.0.0", url, tmp_path / "device")


def _resigned(signed: dict[str, Path], version: str, tmp_path: Path) -> Path:
    folder = Path(shutil.copytree(signed["1.0.0"], tmp_path / f"bundle-{version}"))
    manifest = json.loads((folder / layout.MANIFEST).read_text())
    (folder / layout.MANIFEST).write_text(json.dumps({**manifest, "version": version}))
    sign_bundle(folder, signed["key"])
    return folder


def test_a_fleet_build_of_1_0_9_is_older_than_release_1_0_10(registry, signed, tmp_path):
    url, _ = registry
    for version in ("1.0.9+fleet.1", "1.0.10"):
        client.push(_resigned(signed, version, tmp_path), url, TOKEN)
    device = tmp_path / "device"
    client.pull("minilm-bbc@1.0.9+fleet.1", url, device, trust=signed["trust"])
    client.pull("minilm-bbc@1.0.10", url, device, trust=signed["trust"])
    assert client.installed_path(device, "minilm-bbc").name == "1.0.10"
    with pytest.raises(SignatureError, match="older than the installed"):
        client.pull("minilm-bbc@1.0.9+fleet.1", url, device, trust=signed["trust"])
