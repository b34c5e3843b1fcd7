"""The trainable head as an ONNX graph, and its ORT training artifacts."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from device_runtime.engines import l2sp
from device_runtime.head_graph import MAX_IR_VERSION, head_model, layer_names
from device_runtime.labels import SPARE_BIAS
from device_runtime.ort_training import training_api
from edgeft.config import ExportConfig, HeadKind
from edgeft.manifest import HeadSpec


def build_head(in_features: int, n_classes: int, config: ExportConfig, seed: int = 0) -> tuple[onnx.ModelProto, HeadSpec]:
    """The head graph (features -> logits) and its spec for the manifest.

    The head has ``n_classes + config.spare_labels`` outputs: the spare ones
    wait for labels a device adds (:mod:`device_runtime.labels`).

    A linear head starts at zero (logistic regression from scratch); an MLP
    head starts from Kaiming-uniform weights, as torch's ``nn.Linear`` does.
    """
    rng = np.random.default_rng(seed)
    n_classes += config.spare_labels  # spare slots for labels added on devices, masked until claimed
    layers = layer_names(config.head.value)
    if config.head is HeadKind.LINEAR:
        weights = [np.zeros((n_classes, in_features), np.float32)]
    else:
        weights = [_kaiming(rng, config.hidden_size, in_features), _kaiming(rng, n_classes, config.hidden_size)]
    params = {}
    for (w, b), weight in zip(layers, weights, strict=True):
        params[w], params[b] = weight, np.zeros(len(weight), np.float32)
    if config.spare_labels:
        w, b = layers[-1]
        params[w][-config.spare_labels :] = 0.0
        params[b][-config.spare_labels :] = SPARE_BIAS  # masked until a device claims the slot
    model = head_model(layers, params)
    onnx.checker.check_model(model)
    spec = HeadSpec(
        kind=config.head.value,
        in_features=in_features,
        out_features=n_classes,
        hidden_size=config.hidden_size if config.head is HeadKind.MLP else None,
        trainable=[name for layer in layers for name in layer],
        frozen=[],
        loss="cross_entropy",
        optimizer="adamw",
        weight_decay=config.weight_decay,
        trained=False,
        spare_labels=config.spare_labels,
    )
    return model, spec


def _kaiming(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)


def write_training_artifacts(model: onnx.ModelProto, spec: HeadSpec, folder: Path) -> HeadSpec:
    """ORT training, eval and optimizer models plus the checkpoint, into ``folder``.

    The trainable set and the frozen set come from the spec and must not overlap.
    ``logits`` is kept as an extra output so the eval model serves predictions too.
    The loss is mean cross-entropy plus L2-SP, ``strength / 2 * sum ||W - anchor||^2``
    over the trainable weights (:mod:`device_runtime.engines.l2sp`), whose strength and anchors are frozen
    parameters (``l2sp.strength``, ``l2sp.anchor.<name>``): a device sets them
    without a new graph, and strength 0 is plain cross-entropy.

    Returns:
        The spec, with ``l2sp`` set.
    """
    overlap = set(spec.trainable) & set(spec.frozen)
    if overlap:
        raise ValueError(f"Parameters both trainable and frozen: {sorted(overlap)}")
    # Through the device adapter's bare package: the artifacts need no torch, so neither
    # does exporting an ONNX backbone file.
    training_api()
    from onnxruntime.training import artifacts, onnxblock

    penalized = l2sp.penalized(spec.trainable)
    model, l2sp_names = _with_l2sp_parameters(model, penalized)
    logging.getLogger("root").setLevel(logging.ERROR)
    folder.mkdir(parents=True, exist_ok=True)  # generate_artifacts does not create it
    with native_stderr_captured():
        artifacts.generate_artifacts(
            model,
            requires_grad=spec.trainable,
            frozen_params=[*spec.frozen, *l2sp_names],
            loss=_l2sp_cross_entropy(onnxblock, penalized),
            # OptimType.AdamW would bake in weight_decay=0; the block takes ours.
            optimizer=onnxblock.optim.AdamW(weight_decay=spec.weight_decay),
            artifact_directory=folder,
            additional_output_names=["logits"],
        )
    for name in ("training_model.onnx", "eval_model.onnx", "optimizer_model.onnx"):
        readable_ir(folder / name)
    return dataclasses.replace(spec, l2sp=True)


def readable_ir(path: Path) -> None:
    """Lower the IR version of the model at ``path`` to one every supported onnxruntime reads.

    onnx >= 1.17 stamps its own IR version (onnx 1.23: IR 14) on graphs it builds, such as the optimizer
    model ``generate_artifacts`` writes, and ORT 1.19.2 refuses anything above IR 10. The operators are
    the same: the opset imports, not the IR version, say which ones a graph uses.
    """
    model = onnx.load(str(path), load_external_data=False)
    if model.ir_version > MAX_IR_VERSION:
        model.ir_version = MAX_IR_VERSION
        onnx.save(model, str(path))


def _with_l2sp_parameters(model: onnx.ModelProto, penalized: list[str]) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` with L2-SP's strength (0) and one anchor per penalized parameter (its current value)."""
    model = copy.deepcopy(model)
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    added = [numpy_helper.from_array(np.zeros((), np.float32), l2sp.STRENGTH)]
    added += [numpy_helper.from_array(values[name].astype(np.float32), l2sp.ANCHOR + name) for name in penalized]
    model.graph.initializer.extend(added)
    return model, [t.name for t in added]


def _l2sp_cross_entropy(onnxblock: types.ModuleType, penalized: list[str]) -> Any:
    """An onnxblock loss: mean cross-entropy of the logits plus ``strength / 2 * sum ||w - anchor||^2``."""
    blocks = onnxblock.blocks

    class L2SPCrossEntropy(onnxblock.Block):
        def __init__(self) -> None:
            super().__init__()
            self._cross_entropy = onnxblock.loss.CrossEntropyLoss()

        def build(self, logits: str) -> str:
            loss = self._cross_entropy(logits)
            penalty = None
            for name in penalized:
                drift = blocks.Sub()(name, l2sp.ANCHOR + name)
                term = blocks.ReduceSum(keepdims=False)(blocks.Mul()(drift, drift))
                penalty = term if penalty is None else blocks.Add()(penalty, term)
            # onnxblock's Constant is of shape [1]; a scalar keeps the loss a scalar, as ORT's own loss is.
            self.base.graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "l2sp.half"))
            half = blocks.Mul()("l2sp.half", l2sp.STRENGTH)
            return blocks.Add()(loss, blocks.Mul()(half, penalty))

    return L2SPCrossEntropy()


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[None]:
    """Hold back what native code writes to stderr; replay it only if the block fails.

    ORT's gradient-graph builder logs every graph pass at INFO level from C++,
    where no Python logging setting reaches.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace")[-5000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
