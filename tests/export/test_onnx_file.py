"""An existing ONNX backbone file to a bundle: feature output by name, pooling, and no torch needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from device_runtime import Personalizer
from edgeft.bundle import Bundle
from edgeft.config import ExportConfig
from edgeft.errors import ExportError
from export import BackboneOptions, ServerData, export_bundle

FP32 = ExportConfig(quantization="none")
TEXTS = ["The central bank raised interest rates again.", "A striker scored twice in the cup final.", "ok"]


def _sentence_embeddings(model: Path, tokenizer: Path, texts: list[str]) -> np.ndarray:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer))
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in enc], np.int64)}
    return ort.InferenceSession(str(model)).run(["sentence_embedding"], feeds)[0]


def test_mean_pooled_token_output_reproduces_the_sentence_embedding(minilm_onnx, tmp_path):
    model, tokenizer = minilm_onnx
    export_bundle(
        model,
        tmp_path / "b",
        data=ServerData(label_set=["a", "b"]),
        config=FP32,
        backbone=BackboneOptions(feature_output="token_embeddings", pooling="mean", tokenizer=tokenizer),
    )
    bundle = Bundle.load(tmp_path / "b")
    assert (bundle.manifest.backbone.pooling, bundle.manifest.backbone.output_name) == ("mean", "features")
    features = Personalizer(bundle).transform(TEXTS)
    # sentence-transformers' MiniLM output is the masked mean, L2-normalized.
    normalized = features / np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose(normalized, _sentence_embeddings(model, tokenizer, TEXTS), atol=1e-5)


def test_cls_pooling_and_an_already_pooled_output(minilm_onnx, tmp_path):
    model, tokenizer = minilm_onnx
    export_bundle(
        model,
        tmp_path / "cls",
        data=ServerData(label_set=["a", "b"]),
        config=FP32,
        backbone=BackboneOptions(feature_output="token_embeddings", pooling="cls", tokenizer=tokenizer),
    )
    assert Personalizer.from_bundle(tmp_path / "cls").transform(TEXTS).shape == (3, 384)
    export_bundle(
        model,
        tmp_path / "pooled",
        data=ServerData(label_set=["a", "b"]),
        config=FP32,
        backbone=BackboneOptions(feature_output="sentence_embedding", tokenizer=tokenizer),
    )
    np.testing.assert_allclose(
        Personalizer.from_bundle(tmp_path / "pooled").transform(TEXTS), _sentence_embeddings(model, tokenizer, TEXTS), atol=1e-5
    )


def test_an_onnx_image_backbone_personalizes_on_images(effnet_onnx, fashion, tmp_path):
    images, labels = fashion["server"]
    manifest = export_bundle(
        effnet_onnx,
        tmp_path / "b",
        data=ServerData(images, labels),
        config=FP32,
        backbone=BackboneOptions(feature_output="features"),
    )
    assert manifest.input.modality == "image" and manifest.head.trained
    assert manifest.metrics["server_train_accuracy"] == 1.0
    test_images, test_labels = fashion["test"]
    assert Personalizer.from_bundle(tmp_path / "b").score(test_images, test_labels) > 0.3


def test_a_missing_output_is_named_and_nothing_is_written(minilm_onnx, tmp_path):
    model, tokenizer = minilm_onnx
    with pytest.raises(
        ExportError, match=r"has no output 'pooled'; its outputs are \['sentence_embedding', 'token_embeddings'\]"
    ):
        export_bundle(
            model,
            tmp_path / "b",
            data=ServerData(label_set=["a", "b"]),
            backbone=BackboneOptions(feature_output="pooled", tokenizer=tokenizer),
        )
    with pytest.raises(ExportError, match="rank 3, but pooling 'none' needs rank 2; pass --pooling mean or cls"):
        export_bundle(
            model,
            tmp_path / "b",
            data=ServerData(label_set=["a", "b"]),
            backbone=BackboneOptions(feature_output="token_embeddings", tokenizer=tokenizer),
        )
    with pytest.raises(ExportError, match="pooling must be one of none, mean, cls; got 'max'"):
        export_bundle(
            model,
            tmp_path / "b",
            data=ServerData(label_set=["a", "b"]),
            backbone=BackboneOptions(feature_output="token_embeddings", pooling="max", tokenizer=tokenizer),
        )
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="is not a readable ONNX model"):
        export_bundle(bad, tmp_path / "b", data=ServerData(label_set=["a", "b"]), backbone=BackboneOptions(feature_output="x"))
    assert not (tmp_path / "b").exists()


def test_exporting_an_onnx_file_imports_no_torch(effnet_onnx, tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
        "from export import BackboneOptions, ServerData, export_bundle\n"
        f"export_bundle({str(effnet_onnx)!r}, {str(tmp_path / 'b')!r}, backbone=BackboneOptions(feature_output='features'),"
        " data=ServerData(label_set=['a', 'b']), config=__import__('edgeft.config').config.ExportConfig(quantization='none'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=Path(__file__).parents[2]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert Bundle.load(tmp_path / "b").manifest.input.modality == "image"
