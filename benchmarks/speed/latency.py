"""Predict latency of a personalized bundle, FP32 vs INT8, against a bare onnxruntime session.

Runs in a device-only worker. The bare path is what a user would write by hand
for the personalized model exported as one ONNX file (backbone + head): the
tokenizer and a single InferenceSession.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.speed.config import DATA, FP32_BUNDLE, INT8_BUNDLE
from device_runtime.backbone import text_feeds


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds."""
    ms = np.asarray(seconds) * 1000
    return {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)}


def unseen(texts: list[str], calls: int) -> list[list[str]]:
    """``calls`` copies of ``texts``, each text made new (a call number appended).

    edgeft caches the features of every example it has seen, so predicting the
    same texts again would time a cache lookup; a device predicts new texts.
    """
    return [[f"{text} ({k})" for text in texts] for k in range(calls)]


def measure(predict, calls: list[list[str]]) -> dict[str, float]:
    """Latency percentiles of ``predict`` over ``calls``, after the first 3 (warm-up)."""
    seconds = []
    for inputs in calls:
        started = time.perf_counter()
        predict(inputs)
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds[3:])


class BareOrt:
    """The bundle's tokenizer + one InferenceSession of the exported model: no edgeft code on the predict path."""

    def __init__(self, personalizer, folder: Path) -> None:
        import onnxruntime as ort

        model = personalizer.export_inference_model(folder / "model.onnx")
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.tokenizer = personalizer.backbone.tokenizer  # truncation and padding as the bundle sets them
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.labels = np.asarray(personalizer.labels)

    def __call__(self, texts: list[str]) -> np.ndarray:
        feeds = text_feeds(self.tokenizer.encode_batch(texts), self.input_names)
        return self.labels[self.session.run(["logits"], feeds)[0].argmax(axis=1)]


def check_same_model(bare: BareOrt, personalizer, texts: list[str]) -> None:
    """Both paths predict alike one text at a time (in a batch, INT8's per-batch scales may tip a close call).

    Raises:
        AssertionError: they disagree, so the comparison would be void.
    """
    for text in texts:
        if bare([text])[0] != personalizer.predict([text])[0]:
            raise AssertionError(f"The bare path predicts differently from edgeft on {text[:60]!r}; the comparison is void.")


def run(spec: dict) -> dict:
    """Latency of Personalizer.predict and of the bare path, single example and one batch, per precision."""
    from device_runtime import Personalizer

    cache = Path(spec["cache"])
    data = json.loads((cache / DATA).read_text())
    texts, labels = data["pool"]
    single, batch = texts[:1], data["test"][0][: spec["latency_batch"]]
    results = {}
    for precision, name in [("int8", INT8_BUNDLE), ("fp32", FP32_BUNDLE)]:
        personalizer = Personalizer.from_bundle(cache / name).fit(
            texts, labels, epochs=1, batch_size=spec["batch_size"], validation_fraction=0.0, accept="always"
        )
        with tempfile.TemporaryDirectory() as folder:
            bare = BareOrt(personalizer, Path(folder))
            check_same_model(bare, personalizer, batch)  # unseen texts: none has cached features
            for case, inputs in [("single", single), ("batch", batch)]:
                calls = unseen(inputs, 3 + spec["latency_samples"])
                results[f"{precision}/{case}/edgeft"] = measure(personalizer.predict, calls)
                results[f"{precision}/{case}/bare-ort"] = measure(bare, calls)
    return {"alternative": "latency", "batch_size": len(batch), "latency": results}
