"""The trust policy at every door: one loader (Bundle.load) applies the argument, RuntimeConfig or $EDGEFT_TRUST,
and a signature no policy checked is reported as unverified, never taken on trust."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from device_runtime import Personalizer
from edgeft import layout
from edgeft.bundle import Bundle, file_sha256
from edgeft.cli import main
from edgeft.config import RuntimeConfig
from edgeft.signing import TRUST_ENV, SignatureError, UnverifiedSignatureWarning, create_key, sign_bundle, trust_key
from edgeft.version_order import is_older
from tests.serve.conftest import free_port


@pytest.fixture
def swapped(bundle_copy: Path, tmp_path: Path) -> dict[str, Path]:
    """A signed bundle whose labels 0 and 1 were then swapped (labels.json re-hashed, signature kept), a trust file
    trusting its publisher, and a data file."""
    key, public = create_key(tmp_path / "keys", "publisher")
    trust_key(tmp_path / "trust.json", public)
    sign_bundle(bundle_copy, key)
    manifest = json.loads((bundle_copy / layout.MANIFEST).read_text())
    manifest["labels"][:2] = manifest["labels"][1::-1]
    (bundle_copy / layout.LABELS).write_text(json.dumps(manifest["labels"]))
    manifest["files"][layout.LABELS] = {
        "size": (bundle_copy / layout.LABELS).stat().st_size,
        "sha256": file_sha256(bundle_copy / layout.LABELS),
    }
    (bundle_copy / layout.MANIFEST).write_text(json.dumps(manifest))
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"text {i},{manifest['labels'][i % 2]}\n" for i in range(4)))
    return {"bundle": bundle_copy, "trust": tmp_path / "trust.json", "data": data}


def test_bundle_load_applies_the_trust_file_named_by_the_environment(swapped, monkeypatch) -> None:
    monkeypatch.setenv(TRUST_ENV, str(swapped["trust"]))
    with pytest.raises(SignatureError, match="does not match its manifest.json"):
        Bundle.load(swapped["bundle"])


def test_verify_false_does_not_skip_a_trust_policy(swapped) -> None:
    with pytest.raises(SignatureError):
        Bundle.load(swapped["bundle"], verify=False, trust=swapped["trust"])


def test_personalizer_load_applies_the_trust_file_named_by_the_environment(swapped, monkeypatch) -> None:
    monkeypatch.setenv(TRUST_ENV, str(swapped["trust"]))
    with pytest.raises(SignatureError):
        Personalizer.load(swapped["bundle"])


def test_a_state_personalized_before_the_policy_is_refused_once_it_is_set(swapped, tmp_path, monkeypatch) -> None:
    Personalizer.load(swapped["bundle"]).save(tmp_path / "state")
    monkeypatch.setenv(TRUST_ENV, str(swapped["trust"]))
    with pytest.raises(SignatureError):
        Personalizer.load(tmp_path / "state")
    with pytest.raises(SignatureError):
        Personalizer.load(tmp_path / "state", runtime=RuntimeConfig(trust=str(swapped["trust"])))


def _under_policy(argv: list[str], how: str, trust: Path, monkeypatch) -> list[str]:
    """``argv`` with the trust file given as ``--trust`` (how="flag") or through ``$EDGEFT_TRUST`` (how="env")."""
    if how == "env":
        monkeypatch.setenv(TRUST_ENV, str(trust))
        return argv
    return [*argv, "--trust", str(trust)]


@pytest.mark.parametrize("command", ["predict", "evaluate", "drift"])
@pytest.mark.parametrize("how", ["env", "flag"])
def test_device_commands_refuse_a_tampered_bundle_under_the_policy(swapped, command, how, monkeypatch, capsys) -> None:
    argv = _under_policy([command, str(swapped["bundle"]), "--data", str(swapped["data"])], how, swapped["trust"], monkeypatch)
    assert main(argv) == 1
    assert "signature of the bundle" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["env", "flag"])
def test_rollback_refuses_a_state_of_a_tampered_bundle_under_the_policy(swapped, tmp_path, how, monkeypatch, capsys) -> None:
    Personalizer.load(swapped["bundle"]).save(tmp_path / "state")
    argv = _under_policy(["rollback", str(tmp_path / "state"), "--to", "0"], how, swapped["trust"], monkeypatch)
    assert main(argv) == 1
    assert "signature of the bundle" in capsys.readouterr().err


def test_serve_under_a_refusing_policy_says_why_in_one_line(swapped, tmp_path) -> None:
    env = {**os.environ, TRUST_ENV: str(swapped["trust"]), "PYTHONWARNINGS": "ignore"}
    argv = [
        sys.executable,
        "-m",
        "edgeft",
        "serve",
        str(swapped["bundle"]),
        "--state",
        str(tmp_path / "s"),
        "--port",
        str(free_port()),
    ]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("edgeft serve: error: The signature of the bundle")


def test_a_signature_no_policy_checked_is_reported_as_unverified(swapped) -> None:
    with pytest.warns(UnverifiedSignatureWarning, match="not verified"):
        Bundle.load(swapped["bundle"])


def test_an_unsigned_bundle_still_loads_without_a_policy(bundle_copy: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Bundle.load(bundle_copy).manifest.labels


@pytest.mark.parametrize(
    ("older", "newer"),
    [("1.0.9+fleet.1", "1.0.10"), ("1.0.0rc1", "1.0.0"), ("1.0.0-rc1", "1.0.0"), ("1.0.9", "1.0.9+fleet.1"), ("1.9", "1.10")],
)
def test_versions_are_ordered_as_pep_440_says(older, newer) -> None:
    assert is_older(older, newer) and not is_older(newer, older)
