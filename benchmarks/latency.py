"""Predict latency of a personalized bundle, FP32 vs INT8, against a bare onnxruntime session.

Runs in a device-only worker. The bare path is what a user would write by hand
for the same exported model: the tokenizer, the backbone's InferenceSession,
and the personalized head exported as an inference model.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.config import DATA, FP32_BUNDLE, INT8_BUNDLE


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds."""
    ms = np.asarray(seconds) * 1000
    return {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)}


def measure(predict, inputs: list[str], samples: int) -> dict[str, float]:
    """Latency percentiles of ``predict(inputs)`` over ``samples`` calls, after 3 warm-up calls."""
    for _ in range(3):
        predict(inputs)
    seconds = []
    for _ in range(samples):
        started = time.perf_counter()
        predict(inputs)
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds)


class BareOrt:
    """Tokenizer + backbone InferenceSession + head InferenceSession: no edgeft code on the predict path."""

    def __init__(self, personalizer, folder: Path) -> None:
        import onnxruntime as ort

        head = folder / "head.onnx"
        personalizer._session.export_inference_model(head, ["logits"])
        self.backbone = personalizer.backbone  # its tokenizer and session, used directly below
        self.head = ort.InferenceSession(str(head), providers=["CPUExecutionProvider"])
        self.labels = np.asarray(personalizer.labels)

    def __call__(self, texts: list[str]) -> np.ndarray:
        encodings = self.backbone.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        features = self.backbone.session.run([self.backbone.output_name], feeds)[0]
        return self.labels[self.head.run(["logits"], {"features": features})[0].argmax(axis=1)]


def run(spec: dict) -> dict:
    """Latency of Personalizer.predict and of the bare path, single example and one batch, per precision."""
    from device_runtime import Personalizer

    cache = Path(spec["cache"])
    data = json.loads((cache / DATA).read_text())
    texts, labels = data["pool"]
    single, batch = texts[:1], data["test"][0][: spec["latency_batch"]]
    results = {}
    for precision, name in [("int8", INT8_BUNDLE), ("fp32", FP32_BUNDLE)]:
        personalizer = Personalizer.from_bundle(cache / name).fit(texts, labels, epochs=1, batch_size=spec["batch_size"])
        with tempfile.TemporaryDirectory() as folder:
            bare = BareOrt(personalizer, Path(folder))
            if not (bare(batch) == personalizer.predict(batch)).all():
                raise AssertionError(f"The bare {precision} path predicts differently from edgeft; the comparison is void.")
            for case, inputs in [("single", single), ("batch", batch)]:
                results[f"{precision}/{case}/edgeft"] = measure(personalizer.predict, inputs, spec["latency_samples"])
                results[f"{precision}/{case}/bare-ort"] = measure(bare, inputs, spec["latency_samples"])
    return {"alternative": "latency", "batch_size": len(batch), "latency": results}
