"""Signed bundles: what a trust policy accepts and what it refuses, at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeft import layout
from edgeft.bundle import Bundle, file_sha256
from edgeft.cli import main
from edgeft.errors import ConfigError
from edgeft.signing import (
    SignatureError,
    UnsignedBundleWarning,
    UnverifiedSignatureWarning,
    create_key,
    revoke_key,
    sign_bundle,
    trust_key,
)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """A publisher key, a second (untrusted) key, and a trust file trusting the first."""
    publisher, publisher_pub = create_key(tmp_path / "keys", "publisher")
    other, _ = create_key(tmp_path / "keys", "other")
    trust = tmp_path / "trust.json"
    trust_key(trust, publisher_pub)
    return {"publisher": publisher, "public": publisher_pub, "other": other, "trust": trust}


def _edit_manifest(bundle: Path, change) -> None:
    path = bundle / layout.MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def test_a_signed_bundle_loads_under_the_trust_policy(bundle_copy: Path, keys) -> None:
    signature = sign_bundle(bundle_copy, keys["publisher"])
    assert Bundle.load(bundle_copy, trust=keys["trust"]).manifest.name == "minilm-bbc"
    assert json.loads((bundle_copy / layout.SIGNATURE).read_text())["key_id"] == signature.key_id


def test_the_signature_file_is_not_listed_in_the_manifest(bundle_copy: Path, keys) -> None:
    sign_bundle(bundle_copy, keys["publisher"])
    assert layout.SIGNATURE not in Bundle.load(bundle_copy).manifest.files


def test_tampered_labels_are_refused(bundle_copy: Path, keys) -> None:
    sign_bundle(bundle_copy, keys["publisher"])
    _edit_manifest(bundle_copy, lambda m: m.update(labels=m["labels"][::-1]))
    with pytest.raises(SignatureError, match="does not match its manifest.json: the manifest was altered"):
        Bundle.load(bundle_copy, trust=keys["trust"])


def test_a_rewritten_file_with_its_new_sha_in_the_manifest_is_refused(bundle_copy: Path, keys) -> None:
    sign_bundle(bundle_copy, keys["publisher"])
    reference = bundle_copy / layout.REFERENCE
    reference.write_text(reference.read_text().replace("0", "1", 1))

    def rewrite(m: dict) -> None:
        m["files"][layout.REFERENCE] = {"size": reference.stat().st_size, "sha256": file_sha256(reference)}

    _edit_manifest(bundle_copy, rewrite)
    Bundle.load(bundle_copy)  # the checksums alone cannot tell
    with pytest.raises(SignatureError, match="the manifest was altered"):
        Bundle.load(bundle_copy, trust=keys["trust"])


def test_a_bundle_signed_by_an_untrusted_key_is_refused(bundle_copy: Path, keys) -> None:
    sign_bundle(bundle_copy, keys["other"])
    with pytest.raises(SignatureError, match="which this device does not trust"):
        Bundle.load(bundle_copy, trust=keys["trust"])


def test_an_unsigned_bundle_is_refused_under_a_policy(bundle_copy: Path, keys) -> None:
    with pytest.raises(SignatureError, match="is not signed, and this device's trust policy accepts signed bundles only"):
        Bundle.load(bundle_copy, trust=keys["trust"])


def test_a_bundle_signed_by_a_revoked_key_is_refused(bundle_copy: Path, keys) -> None:
    signature = sign_bundle(bundle_copy, keys["publisher"])
    revoke_key(keys["trust"], signature.key_id, "laptop stolen")
    with pytest.raises(SignatureError, match="which this device's trust policy has revoked"):
        Bundle.load(bundle_copy, trust=keys["trust"])
    with pytest.raises(ConfigError, match="a revoked key cannot be trusted again"):
        trust_key(keys["trust"], keys["public"])


def test_an_unsigned_bundle_loads_with_a_warning_where_no_policy_is_set(bundle_copy: Path) -> None:
    with pytest.warns(UnsignedBundleWarning, match="is not signed and no trust policy is set"):
        Bundle.load(bundle_copy)


def test_a_signed_bundle_loads_with_an_unverified_warning_where_no_policy_is_set(bundle_copy: Path, keys) -> None:
    sign_bundle(bundle_copy, keys["publisher"])
    with pytest.warns(
        UnverifiedSignatureWarning, match="carries a signature by key .* no trust policy is set, so it was not verified"
    ):
        Bundle.load(bundle_copy)


def test_a_malformed_signature_file_is_a_signature_error(bundle_copy: Path, keys) -> None:
    (bundle_copy / layout.SIGNATURE).write_text('{"key_id": 5}')
    with pytest.raises(SignatureError, match="key_id: Input should be a valid string"):
        Bundle.load(bundle_copy, trust=keys["trust"])


def test_key_rotation_from_the_command_line(bundle_copy: Path, tmp_path: Path, keys, capsys) -> None:
    old_id = json.loads(keys["public"].read_text())["key_id"]
    trust = str(keys["trust"])
    assert main(["keys", "rotate", "--out", str(tmp_path / "keys"), "--name", "publisher-2", "--trust", trust]) == 0
    assert main(["sign", str(bundle_copy), "--key", str(tmp_path / "keys" / "publisher-2.key")]) == 0
    assert main(["keys", "revoke", old_id, "--trust", trust, "--reason", "rotated"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(bundle_copy), "--trust", trust]) == 0
    assert f"verified against {trust}" in capsys.readouterr().out
    assert main(["keys", "list", "--trust", trust]) == 0
    assert f"revoked  {old_id}" in capsys.readouterr().out


def test_a_trust_file_that_is_no_trust_file_is_a_config_error(bundle_copy: Path, tmp_path: Path) -> None:
    (tmp_path / "trust.json").write_text('{"keys": "everyone"}')
    with pytest.raises(ConfigError, match=r"trust file .* keys: Input should be a valid array"):
        Bundle.load(bundle_copy, trust=tmp_path / "trust.json")
