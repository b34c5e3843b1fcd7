"""One bundle's training step on a GPU machine: the step graph in onnxruntime against the same step in torch on CUDA.

``python tools/gpu_step_check.py gpu-bundle --prepare`` (here, where the exporter runs: about 2 minutes on 2 idle
cores) exports MiniLM cut before its last 2 layers on 40 BBC texts and keeps only what the check reads (18 MB:
``manifest.json`` and ``head/``'s step graphs, parameters and replay rows). On the GPU machine,
``python tools/gpu_step_check.py gpu-bundle [--steps 20]`` runs the same batches through

- the step graph in onnxruntime, on each execution provider this build has among CUDA and CPU, and
- the torch step the graph was traced from (:func:`export.step_graph.step_function` over the evaluation graph),
  on CUDA where torch sees a GPU, and on the CPU,

and prints, per runner, the losses of every step, the median milliseconds per step, and the largest loss
difference from onnxruntime on the CPU, as one JSON object. The runners share the parameters they start from,
so the losses must agree to float rounding.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WARMUP = 3


def batches(head: Path, rows: int, steps: int, n_classes: int, in_features: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` batches of ``rows`` server examples from the replay set (random activations where none ship)."""
    rng = np.random.default_rng(0)
    if (head / "replay.npz").exists():
        with np.load(head / "replay.npz") as replay:
            features, labels = replay["features"].astype(np.float32), replay["labels"].astype(np.int64)
    else:
        features = rng.uniform(0, 1, (rows * 4, in_features)).astype(np.float32)
        labels = rng.integers(0, n_classes, rows * 4)
    picks = [rng.choice(len(labels), rows, replace=len(labels) < rows) for _ in range(steps)]
    return [(features[p], labels[p]) for p in picks]


def initial_state(head: Path, trainable: list[str]) -> dict[str, np.ndarray]:
    from device_runtime.engines import l2sp, step_io

    with np.load(head / "parameters.npz") as data:
        params = {name: data[name].astype(np.float32) for name in trainable}
    state = dict(params)
    state |= {step_io.first_moment(k): np.zeros_like(v) for k, v in params.items()}
    state |= {step_io.second_moment(k): np.zeros_like(v) for k, v in params.items()}
    state |= {step_io.anchor(k): params[k].copy() for k in l2sp.penalized(trainable)}
    return state


def scalars(step: int) -> dict[str, np.ndarray]:
    from device_runtime.engines import step_io

    return {
        step_io.STEP: np.array(step, np.float32),
        step_io.LEARNING_RATE: np.array(1e-3, np.float32),
        step_io.WEIGHT_DECAY: np.array(0.01, np.float32),
        step_io.L2SP_STRENGTH: np.array(0.0, np.float32),
    }


def run_onnxruntime(head: Path, provider: str, state: dict, data: list) -> tuple[list[float], float]:
    import onnxruntime as ort

    from device_runtime.engines import step_io

    session = ort.InferenceSession(str(head / "step_model.onnx"), providers=[provider])
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    state, losses, times = dict(state), [], []
    for i, (x, y) in enumerate(data):
        feeds = {**state, step_io.FEATURES: x, step_io.TARGETS: y, step_io.ROW_WEIGHTS: np.ones(len(y), np.float32)}
        feeds |= scalars(i + 1)
        start = time.perf_counter()
        result = dict(zip(outputs, session.run(outputs, {n: feeds[n] for n in names})))
        times.append(time.perf_counter() - start)
        state |= {name: result[step_io.updated(name)] for name in state if step_io.updated(name) in result}
        losses.append(float(result[step_io.LOSS]))
    return losses, float(np.median(times[WARMUP:]) * 1000)


def run_torch(head: Path, device: str, spec: dict, state: dict, data: list) -> tuple[list[float], float]:
    import onnx
    import torch

    from device_runtime.engines import l2sp, step_io
    from export.step_graph import StepInputs, step_function

    inputs = StepInputs(list(spec["trainable"]), l2sp.penalized(list(spec["trainable"])))
    step = step_function(onnx.load(str(head / "step_eval_model.onnx")), inputs, device)
    tensors = {k: torch.from_numpy(v).to(device) for k, v in state.items()}
    n = len(inputs.trainable)
    losses, times = [], []
    for i, (x, y) in enumerate(data):
        feeds = {**tensors, step_io.FEATURES: torch.from_numpy(x).to(device), step_io.TARGETS: torch.from_numpy(y).to(device)}
        feeds[step_io.ROW_WEIGHTS] = torch.ones(len(y), device=device)
        feeds |= {k: torch.tensor(float(v), device=device) for k, v in scalars(i + 1).items()}
        args = [feeds[name] for name in inputs.names]
        for p in args[:n]:
            p.requires_grad_()
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = step(*args)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        new = dict(zip(inputs.outputs, out))
        tensors = {
            name: new[step_io.updated(name)].detach() if step_io.updated(name) in new else v for name, v in tensors.items()
        }
        losses.append(float(new[step_io.LOSS]))
    return losses, float(np.median(times[WARMUP:]) * 1000)


def prepare(folder: Path) -> None:
    """Export the checked bundle and keep what the check reads in ``folder``."""
    import shutil
    import tempfile

    from edgeft.config import ExportConfig
    from example_data import bbc_news, minilm_path, split_per_class
    from export import ServerData, export_bundle

    texts, labels = bbc_news()
    (server,) = split_per_class(texts, labels, [8], seed=0)
    config = ExportConfig(name="minilm-last2", quantization="int8-dynamic", accept_quality_loss=True, device_trainable_blocks=2)
    with tempfile.TemporaryDirectory() as work:
        bundle = Path(work) / "bundle"
        export_bundle(minilm_path(), bundle, data=ServerData(*server), config=config)
        (folder / "head").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / "manifest.json", folder / "manifest.json")
        for name in ("step_model.onnx", "step_eval_model.onnx", "parameters.npz", "replay.npz"):
            shutil.copyfile(bundle / "head" / name, folder / "head" / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prepare", action="store_true", help="export the bundle into BUNDLE instead (needs the export extra)")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.bundle)
        return
    import onnxruntime as ort
    import torch

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    spec, head = manifest["head"], args.bundle / "head"
    data = batches(head, spec["step_batch"], args.steps + WARMUP, spec["out_features"], spec["in_features"])
    state = initial_state(head, spec["trainable"])
    results = {}
    for provider in ("CUDAExecutionProvider", "CPUExecutionProvider"):
        if provider in ort.get_available_providers():
            results[f"onnxruntime {ort.__version__} {provider}"] = run_onnxruntime(head, provider, state, data)
    for device in ("cuda", "cpu") if torch.cuda.is_available() else ("cpu",):
        results[f"torch {torch.__version__} {device}"] = run_torch(head, device, spec, state, data)
    reference = results[f"onnxruntime {ort.__version__} CPUExecutionProvider"][0]
    report = {
        "bundle": manifest["name"],
        "rows_per_step": spec["step_batch"],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "onnxruntime_providers": ort.get_available_providers(),
        "runners": {
            name: {
                "ms_per_step": ms,
                "max_loss_diff_vs_ort_cpu": float(np.max(np.abs(np.subtract(losses, reference)))),
                "losses": [round(v, 6) for v in losses],
            }
            for name, (losses, ms) in results.items()
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
