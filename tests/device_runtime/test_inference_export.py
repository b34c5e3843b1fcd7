"""export_inference_model writes one ONNX model that plain onnxruntime runs, with the personalized head."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from device_runtime.backbone import text_feeds


@pytest.mark.parametrize("engine", ["ort", "step", "numpy"])
def test_the_merged_model_predicts_what_the_personalizer_predicts(make_personalizer, user, test_split, tmp_path, engine):
    p = make_personalizer(engine=engine, cache_dir=None).fit(*user)
    path = p.export_inference_model(tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    texts = test_split[0][:8]
    feeds = text_feeds(
        p.backbone.tokenizer.encode_batch(texts), p.backbone.input_names
    )  # one batch, as the personalizer embeds it
    _, proba = session.run(None, feeds)
    np.testing.assert_allclose(proba, p.predict_proba(texts), atol=1e-5)
    assert session.get_modelmeta().custom_metadata_map["edgeft.labels"] == ",".join(p.labels)
