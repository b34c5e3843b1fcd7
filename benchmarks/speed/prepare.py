"""Workstation-side preparation: bundles, the textbook ORT artifacts and the data splits.

Runs in the parent process (it needs optimum and torch); every alternative then
reads what this writes. Each artifact is built once per output folder (bundles: ``harness.cached_bundle``).
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import onnx

from benchmarks import harness
from benchmarks.speed.config import DATA, FP32_BUNDLE, INT8_BUNDLE, TEXTBOOK, BenchConfig
from device_runtime import TruncationWarning
from edgeft import layout
from edgeft.config import ExportConfig, Quantization
from example_data import bbc_news, minilm_path, split_per_class
from export import ServerData
from export.head import build_head, native_stderr_captured


def prepare(cache: Path, config: BenchConfig) -> None:
    """Write the INT8 and FP32 bundles, the fused textbook artifacts and ``data.json`` into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", TruncationWarning)
    texts, labels = bbc_news()
    (pool_x, pool_y), (test_x, test_y) = split_per_class(
        texts, labels, [config.pool_per_class, config.test_per_class], seed=config.seed
    )
    # The splits come grouped by class; the workers take the pool's first N, which must mix every class.
    order = random.Random(config.seed).sample(range(len(pool_x)), len(pool_x))
    pool_x, pool_y = [pool_x[i] for i in order], [pool_y[i] for i in order]
    classes = sorted(set(labels))
    data = {"labels": classes, "pool": [pool_x, pool_y], "test": [test_x, test_y]}
    (cache / DATA).write_text(json.dumps(data))
    for name, quantization in [(INT8_BUNDLE, Quantization.INT8_DYNAMIC), (FP32_BUNDLE, Quantization.NONE)]:
        # Untrained heads (zeros): every alternative starts from the same head.
        export_config = ExportConfig(name=name, quantization=quantization, license="apache-2.0")
        harness.cached_bundle(cache / name, minilm_path(), ServerData(label_set=classes), export_config)
    if not (cache / TEXTBOOK / "checkpoint").is_file():
        write_textbook_artifacts(cache / FP32_BUNDLE, cache / TEXTBOOK, len(classes))


def write_textbook_artifacts(fp32_bundle: Path, folder: Path, n_classes: int) -> None:
    """ORT's tutorial recipe: the whole FP32 model as one training graph, backbone frozen.

    The head is the same zero-initialized linear layer the bundle ships,
    joined to the backbone's pooled output with ``onnx.compose.merge_models``.
    """
    from onnxruntime.training import artifacts, onnxblock

    manifest = json.loads((fp32_bundle / layout.MANIFEST).read_text())
    backbone = onnx.shape_inference.infer_shapes(onnx.load(str(fp32_bundle / layout.BACKBONE)))
    head, spec = build_head(manifest["backbone"]["feature_size"], n_classes, ExportConfig())
    head.ir_version = backbone.ir_version
    fused = onnx.compose.merge_models(
        backbone, head, io_map=[(manifest["backbone"]["output_name"], "features")], outputs=["logits"]
    )
    frozen = [i.name for i in backbone.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    folder.mkdir(parents=True, exist_ok=True)  # generate_artifacts does not create it
    with native_stderr_captured():
        artifacts.generate_artifacts(
            fused,
            requires_grad=spec.trainable,
            frozen_params=frozen,
            loss=artifacts.LossType.CrossEntropyLoss,
            optimizer=onnxblock.optim.AdamW(weight_decay=spec.weight_decay),
            artifact_directory=folder,
            additional_output_names=["logits"],
        )
