"""One standalone ONNX model, backbone plus personalized head, for plain onnxruntime."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from device_runtime.engines import HeadEngine
from edgeft import atomic, layout
from edgeft.bundle import Bundle
from edgeft.errors import ExportError


def export_inference_model(bundle: Bundle, engine: HeadEngine, path: str | os.PathLike, labels: list[str]) -> Path:
    """Merge the bundle's backbone with ``engine``'s head into one model at ``path``.

    The model takes the backbone's inputs (``input_ids``, ``attention_mask``, ...)
    and gives ``logits`` and ``probabilities`` over exactly ``labels`` (the
    bundle's and those added on the device; unclaimed spare slots are cut off).
    The head graph comes from the engine (ORT's ``export_model_for_inferencing``
    for the ORT engine).

    Raises:
        ExportError: ``onnx`` is missing, the two graphs cannot be joined, or ``path`` is a folder or cannot be written.
    """
    if Path(path).is_dir():
        raise ExportError(f"{path} is a folder; give the path of the .onnx file to write, e.g. {Path(path) / 'model.onnx'}.")
    try:
        import onnx
        from onnx import compose, helper, numpy_helper
    except ImportError as e:
        raise ExportError("export_inference_model needs the onnx package (pip install onnx).") from e
    with tempfile.TemporaryDirectory() as work:
        engine.export_head(Path(work) / "head.onnx")
        head = onnx.load(str(Path(work) / "head.onnx"))
    backbone = onnx.load(str(bundle.file(layout.BACKBONE)))
    head.ir_version = backbone.ir_version
    head = compose.add_prefix(head, "head/")
    try:
        merged = compose.merge_models(
            backbone,
            head,
            io_map=[(bundle.manifest.backbone.output_name, "head/features")],
            outputs=["head/logits"],
        )
    except (ValueError, onnx.checker.ValidationError) as e:
        raise ExportError(f"Could not join the backbone and the head into one model: {e}") from e
    graph = merged.graph
    n_classes = len(labels)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([value], np.int64), name)
            for name, value in (("active/starts", 0), ("active/ends", n_classes), ("active/axes", 1))
        ]
    )
    graph.node.append(helper.make_node("Slice", ["head/logits", "active/starts", "active/ends", "active/axes"], ["logits"]))
    graph.node.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", n_classes])
            for name in ("logits", "probabilities")
        ]
    )
    merged.metadata_props.extend(
        [
            onnx.StringStringEntryProto(key="edgeft.labels", value=",".join(labels)),
            onnx.StringStringEntryProto(key="edgeft.bundle", value=f"{bundle.manifest.name}@{bundle.manifest.version}"),
        ]
    )
    try:
        with atomic.atomic_path(path) as tmp:
            onnx.save(merged, str(tmp))
    except OSError as e:
        raise ExportError(f"Could not write the model to {path} ({e.strerror}); nothing was written there.") from e
    return Path(path)
