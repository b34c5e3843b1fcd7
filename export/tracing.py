"""Torch modules to ONNX, the one way this exporter does it: the TorchScript exporter at the head's opset, then a parity check.

Every torch part of a bundle (a whole vision backbone, a cut's frozen part, its trainable tail) goes through
:func:`export_module`, so they share one opset, one dynamic batch axis, one way of silencing the tracer and one
typed error; :func:`largest_difference` then measures what onnxruntime computes against what torch did.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import IO

import numpy as np
import onnx
import torch

from device_runtime.head_graph import OPSET
from edgeft.errors import ExportError

BATCH = "batch"  # the name of every graph's dynamic first axis


def export_module(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    target: str | os.PathLike | IO[bytes],
    *,
    input_names: list[str],
    output_names: list[str],
    what: str,
    keep_names: bool = False,
    dynamic_batch: bool = True,
) -> None:
    """Trace ``module`` on ``args`` and write it to ``target`` as ONNX (opset :data:`export.head.OPSET`, batch dynamic).

    The TorchScript exporter (``dynamo=False``) writes IR 8, which onnxruntime-training 1.19.2 reads, and needs
    no onnxscript.

    Args:
        module: the module, in eval mode (BatchNorm in training mode breaks the exported graph).
        args: example inputs with a real input's shape; the first axis of each is the batch.
        target: a file path, or a binary buffer.
        input_names: the graph's input names, one per tensor of ``args``.
        output_names: the graph's output names.
        what: the part exported, for the error message ("the frozen part").
        keep_names: no constant folding, so every weight keeps its module's name (a Linear's weight is not
            folded into a transposed copy named ``onnx::MatMul_156``).
        dynamic_batch: the first axis of every input and output named :data:`BATCH`; off for graphs whose
            inputs do not all have one (a training step's parameters), which then take the traced shapes.

    Raises:
        ExportError: the trace or the export failed; the message says which part and why.
    """
    try:
        with warnings.catch_warnings():
            # The tracer warns about every Python value it freezes into the graph; the parity check says
            # whether the graph is right.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(target) if isinstance(target, (str, os.PathLike)) else target,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes={name: {0: BATCH} for name in [*input_names, *output_names]} if dynamic_batch else None,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=not keep_names,
            )
    except Exception as e:  # the tracer raises many types; say which part failed and why
        raise ExportError(f"torch.onnx.export failed for {what}: {type(e).__name__}: {e}") from e


def largest_difference(model: Path | onnx.ModelProto, feeds: dict[str, np.ndarray], output: str, expected: np.ndarray) -> float:
    """The largest absolute difference between ``output`` as onnxruntime computes it on ``feeds`` and ``expected``.

    Args:
        model: the exported ONNX file, or the model in memory.
        feeds: inputs by name; those the graph does not take are left out (a tokenizer's ``token_type_ids``).
        output: the output compared.
        expected: what torch computed on the same inputs.
    """
    import onnxruntime as ort

    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    got = session.run([output], {name: value for name, value in feeds.items() if name in names})[0]
    return float(np.abs(got - expected).max())
