"""FP32 vs INT8 backbones, measured by the exporter itself: size, latency, agreement.

Exports MiniLM (BBC News, 40 per class) and EfficientNet-Lite0 (Fashion-MNIST,
20 per class) with each INT8 mode, and prints the figures each manifest records.
Run: .venv/bin/python -m examples.measure_int8 [output-folder]
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

from device_runtime import TruncationWarning
from edgeft.config import ExportConfig
from example_data import bbc_news, fashion_mnist, minilm_path, split_per_class
from export import ServerData, export_bundle
from export.vision import VISION_MODELS

COLUMNS = [
    ("backbone_bytes_fp32", "FP32 MB", 1e-6),
    ("backbone_bytes_int8", "INT8 MB", 1e-6),
    ("backbone_latency_ms_fp32", "FP32 ms", 1),
    ("backbone_latency_ms_int8", "INT8 ms", 1),
    ("validation_accuracy_fp32", "FP32 acc", 1),
    ("validation_accuracy_int8", "INT8 acc", 1),
    ("int8_identical_predictions", "identical", 1),
]


def main(out: Path) -> None:
    warnings.simplefilter("ignore", TruncationWarning)
    texts, labels = bbc_news()
    (server,) = split_per_class(texts, labels, [40], seed=0)
    images, image_labels = fashion_mnist("train", per_class=20)
    vision = VISION_MODELS["efficientnet-lite0"]
    print("| backbone | mode | " + " | ".join(c[1] for c in COLUMNS) + " | latency batch | validation n |")
    print("|---" * (len(COLUMNS) + 4) + "|")
    for mode in ("int8-dynamic", "int8-static"):
        config = ExportConfig(quantization=mode, accept_quality_loss=True)
        runs = [
            (
                "MiniLM-L6 (BBC)",
                lambda p, config=config: export_bundle(minilm_path(), p, data=ServerData(*server), config=config),
            ),
            (
                "EfficientNet-Lite0 (Fashion-MNIST)",
                lambda p, config=config: export_bundle(vision.build(), p, data=ServerData(images, image_labels), config=config),
            ),
        ]
        for name, run in runs:
            m = run(out / f"{name.split()[0]}-{mode}").metrics
            cells = [f"{m[key] * scale:.3g}" for key, _, scale in COLUMNS]
            print(
                f"| {name} | {mode} | " + " | ".join(cells) + f" | {m['latency_batch_size']} | {m['validation_examples']} |",
                flush=True,
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
