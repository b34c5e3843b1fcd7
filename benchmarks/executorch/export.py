"""The ExecuTorch programs, exported as a new user would: ``python -m benchmarks.executorch.export CACHE BATCH NAMES``.

Runs in the ExecuTorch environment (see executorch_env.py), never in the
product's. Writes into ``CACHE/executorch/`` one ``.pte`` per program and
``export.json`` with each program's export seconds and bytes, or the error its
export raised. NAMES (comma-separated) are the alternatives whose programs to
export (see ``NEEDS``). Each program is exported once per cache folder.

ExecuTorch plans memory ahead of time, so every program has a static shape:
``BATCH`` examples, and for text ``STATIC_TOKENS`` tokens (MiniLM's maximum).
The alternatives pad to it: token padding is masked out, and padded examples
carry the label ``IGNORE`` that the loss leaves out, so gradients are exact.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.speed.config import DATA
from edgeft import atomic

FOLDER = "executorch"
RESULTS = "export.json"
STATIC_TOKENS = 128
IGNORE = -100  # CrossEntropyLoss's ignore_index: a padded example adds nothing to loss or gradient
TEXT_FEATURES, VISION_FEATURES = 384, 1280
VISION_CLASSES = 10
IMAGE_SHAPE = (3, 224, 224)

# Program name -> file; the alternatives read these.
TEXT_TRAIN, TEXT_FP32, TEXT_INT8, TEXT_HEAD = (
    "text-train-fp32.pte",
    "text-backbone-fp32.pte",
    "text-backbone-int8.pte",
    "text-head.pte",
)
VISION_TRAIN, VISION_FP32, VISION_HEAD = "vision-train-fp32.pte", "vision-backbone-fp32.pte", "vision-head.pte"
# The programs each ExecuTorch alternative (executorch_alternatives.py) runs.
NEEDS = {
    "executorch-textbook": (TEXT_TRAIN,),
    "executorch-fp32-cached": (TEXT_FP32, TEXT_HEAD),
    "executorch-int8-cached": (TEXT_INT8, TEXT_HEAD),
    "vision-executorch-textbook": (VISION_TRAIN,),
    "vision-executorch-fp32-cached": (VISION_FP32, VISION_HEAD),
}


class MiniLMEncoder(torch.nn.Module):
    """all-MiniLM-L6-v2's sentence embedding (mean over real tokens, unit length), as the bundle computes it."""

    def __init__(self) -> None:
        from transformers import AutoModel

        from example_data import minilm_path

        super().__init__()
        self.model = AutoModel.from_pretrained(minilm_path()).eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1)


class HeadWithLoss(torch.nn.Module):
    """A zero linear head (the bundle's start) behind an optional frozen backbone; the loss is the first output.

    ExecuTorch's training export wants the loss first; the logits come second,
    detached, for prediction.
    """

    def __init__(self, backbone: torch.nn.Module | None, features: int, classes: int) -> None:
        super().__init__()
        self.backbone = backbone.requires_grad_(False) if backbone is not None else None
        self.head = torch.nn.Linear(features, classes)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.loss = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        *features, labels = inputs
        x = self.backbone(*features) if self.backbone is not None else features[0]
        logits = self.head(x)
        return self.loss(logits, labels), logits.detach()


def vision_backbone() -> torch.nn.Module:
    from export.vision import VISION_MODELS

    return VISION_MODELS["efficientnet-lite0"].build().eval()


def training_program(module: torch.nn.Module, example: tuple) -> bytes:
    """The joint forward+backward graph, lowered to ExecuTorch's portable kernels (the training extension's recipe)."""
    from executorch.exir import EdgeCompileConfig, to_edge
    from torch.export.experimental import _export_forward_backward

    program = _export_forward_backward(torch.export.export(module, example))
    return to_edge(program, compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch().buffer


def xnnpack_program(module: torch.nn.Module, example: tuple, int8: bool = False) -> bytes:
    """An inference program delegated to XNNPACK; INT8 is dynamic, per-channel, through the XNNPACK quantizer."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    if int8:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
        prepared = prepare_pt2e(torch.export.export(module, example).module(), quantizer)
        prepared(*example)  # dynamic quantization needs no calibration data; one pass to trace observers
        module = convert_pt2e(prepared)
    program = torch.export.export(module, example)
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def text_example(batch: int, labels: bool) -> tuple:
    ids = torch.ones(batch, STATIC_TOKENS, dtype=torch.long)
    return (ids, ids.clone(), torch.zeros(batch, dtype=torch.long)) if labels else (ids, ids.clone())


def programs(batch: int, text_classes: int) -> dict[str, Callable[[], bytes]]:
    """Each program's file name and how to export it, text first."""
    images = torch.zeros(batch, *IMAGE_SHAPE)
    no_labels = torch.zeros(batch, dtype=torch.long)
    return {
        TEXT_FP32: lambda: xnnpack_program(MiniLMEncoder(), text_example(batch, False)),
        TEXT_INT8: lambda: xnnpack_program(MiniLMEncoder(), text_example(batch, False), int8=True),
        TEXT_HEAD: lambda: training_program(
            HeadWithLoss(None, TEXT_FEATURES, text_classes), (torch.zeros(batch, TEXT_FEATURES), no_labels)
        ),
        TEXT_TRAIN: lambda: training_program(
            HeadWithLoss(MiniLMEncoder(), TEXT_FEATURES, text_classes), text_example(batch, True)
        ),
        VISION_FP32: lambda: xnnpack_program(vision_backbone(), (images,)),
        VISION_HEAD: lambda: training_program(
            HeadWithLoss(None, VISION_FEATURES, VISION_CLASSES), (torch.zeros(batch, VISION_FEATURES), no_labels)
        ),
        VISION_TRAIN: lambda: training_program(
            HeadWithLoss(vision_backbone(), VISION_FEATURES, VISION_CLASSES), (images, no_labels)
        ),
    }


def export_results(cache: Path) -> dict[str, dict]:
    """Each program's export seconds and bytes, or its error, as far as exported."""
    path = cache / FOLDER / RESULTS
    return json.loads(path.read_text()) if path.is_file() else {}


def exported(cache: Path, alternative: str) -> bool:
    """Whether every program ``alternative`` runs is in ``cache`` (its export did not fail)."""
    return all((cache / FOLDER / name).is_file() for name in NEEDS[alternative])


def export_all(cache: Path, batch: int, alternatives: list[str], log=print) -> dict[str, dict]:
    """Export the programs ``alternatives`` need and ``cache/executorch`` lacks; returns (and writes) seconds, bytes or error."""
    folder = cache / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    results = export_results(cache)
    text_classes = len(json.loads((cache / DATA).read_text())["labels"])
    wanted = {name for alternative in alternatives for name in NEEDS[alternative]}
    for name, export in programs(batch, text_classes).items():
        if name not in wanted or (name in results and ((folder / name).is_file() or "error" in results[name])):
            continue
        torch.manual_seed(0)
        started = time.perf_counter()
        try:
            buffer = export()
        except ImportError:
            raise  # this environment lacks a package: its fault, not ExecuTorch's, so nothing is recorded
        except Exception as error:  # noqa: BLE001 - the report shows what ExecuTorch said, and the run goes on
            results[name] = {"error": f"{type(error).__name__}: {error}"[:2000], "trace": traceback.format_exc()[-3000:]}
            log(f"  ExecuTorch {name}: export failed ({type(error).__name__})")
        else:
            atomic.write_bytes(folder / name, buffer)  # a half-written program would count as exported
            results[name] = {"seconds": time.perf_counter() - started, "bytes": len(buffer)}
            log(f"  ExecuTorch {name}: {results[name]['seconds']:.1f} s, {len(buffer) / 2**20:.1f} MiB")
        atomic.write_json(folder / RESULTS, results)
    return results


if __name__ == "__main__":
    export_all(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(","), log=lambda line: print(line, flush=True))
