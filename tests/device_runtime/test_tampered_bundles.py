"""A tampered or ill-fitting bundle, without a trust policy, ends in a typed error: never a raw exception."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from device_runtime import Personalizer
from edgeft import layout
from edgeft.bundle import Bundle, file_sha256
from edgeft.cli import main
from edgeft.config import RuntimeConfig
from edgeft.errors import BundleError, EdgeftError


def _edit(bundle: Path, change) -> None:
    manifest = json.loads((bundle / layout.MANIFEST).read_text())
    change(manifest)
    (bundle / layout.MANIFEST).write_text(json.dumps(manifest))


def _rewrite(bundle: Path, name: str, content: bytes) -> None:
    """Replace a file and write its new checksum into the manifest, as an attacker (or a bad copy tool) would."""
    (bundle / name).write_bytes(content)
    _edit(bundle, lambda m: m["files"].__setitem__(name, {"size": len(content), "sha256": file_sha256(bundle / name)}))


def test_a_max_length_below_the_schemas_bound_is_refused_at_load(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m["input"].__setitem__("max_length", 1))
    with pytest.raises(BundleError, match=r"input.max_length: Input should be greater than or equal to 3"):
        Bundle.load(bundle_copy)


def test_a_max_length_past_what_the_backbone_takes_is_a_bundle_error_where_it_runs(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m["input"].__setitem__("max_length", 100_000))
    with pytest.raises(BundleError, match="ONNX Runtime could not run the backbone on a batch of input_ids"):
        Personalizer.load(bundle_copy).predict(["word " * 1000])


@pytest.mark.parametrize(
    ("name", "engine"),
    [(layout.BACKBONE, "auto"), (layout.EVAL_MODEL, "auto"), (layout.TOKENIZER, "auto"), (layout.PARAMETERS, "numpy"),
     (layout.REFERENCE, "auto"), (layout.REFERENCE_SAMPLE, "auto"), (layout.REPLAY, "auto")],
)  # fmt: skip
def test_a_rewritten_file_with_its_checksum_updated_is_a_typed_error(bundle_copy: Path, name: str, engine: str) -> None:
    _rewrite(bundle_copy, name, b"\x08\x01garbage that is no model, tokenizer or array")
    with pytest.raises(EdgeftError):  # BundleError, or StateError where ORT reads the head's artifacts with its checkpoint
        p = Personalizer.load(bundle_copy, runtime=RuntimeConfig(engine=engine))
        p.predict(["a text"])
        p.drift_report(0.5)


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "a\u0000b", ".hidden"])
def test_a_manifest_listing_a_file_outside_the_bundle_is_refused(bundle_copy: Path, path: str) -> None:
    _edit(bundle_copy, lambda m: m["files"].__setitem__(path, {"size": 1, "sha256": "0" * 64}))
    with pytest.raises(BundleError, match="files"):
        Bundle.load(bundle_copy)


def test_a_lone_surrogate_label_in_a_data_file_is_one_line_on_the_command_line(minilm_bundle, tmp_path, capsys) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"text": "a text", "label": "\ud800"}) + "\n" + json.dumps({"text": "b", "label": "tech"}) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(
            ["personalize", str(minilm_bundle), "--data", str(data), "--state", str(tmp_path / "s"), "--new-labels", "add"]
        )
    assert code == 1
    assert "lone surrogate" in capsys.readouterr().err
