"""Benchmark sizes, one frozen dataclass per mode."""

from __future__ import annotations

import dataclasses

# Folder names inside the cache that prepare.py fills and the workers read.
INT8_BUNDLE = "bundle-int8"
FP32_BUNDLE = "bundle-fp32"
TEXTBOOK = "textbook-ort"
DATA = "data.json"


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """How much work each alternative does, and how often it is repeated."""

    # The headline run: N training examples for E epochs.
    examples: int
    epochs: int
    # Timed repetitions after one warm-up run; medians and spreads come from these.
    repetitions: int
    # Growth curves: N at ``epochs_for_n_sweep`` epochs, and E at ``examples_for_e_sweep`` examples.
    n_sweep: tuple[int, ...]
    epochs_for_n_sweep: int
    e_sweep: tuple[int, ...]
    examples_for_e_sweep: int
    # BBC News articles per topic for training (a pool cycled when N is larger) and held out.
    pool_per_class: int
    test_per_class: int
    # Predict-latency samples per case (single example, one batch of ``latency_batch``).
    latency_samples: int
    latency_batch: int
    # EfficientNet-Lite0 + Fashion-MNIST: images per class to train on and held out, and epochs (no sweeps).
    vision_per_class: int
    vision_test_per_class: int
    vision_epochs: int
    # ExecuTorch's rows to run (runners.EXECUTORCH, VISION_EXECUTORCH), each in ExecuTorch's own environment.
    executorch: tuple[str, ...]
    # The bundle's default batch size and learning rate, shared by every alternative.
    batch_size: int = 32
    lr: float = 1e-2
    seed: int = 0


# Every ExecuTorch alternative (benchmarks/executorch/alternatives.py); smoke mode runs the cheapest alone.
EXECUTORCH_ROWS = (
    "executorch-textbook",
    "executorch-fp32-cached",
    "executorch-int8-cached",
    "vision-executorch-textbook",
    "vision-executorch-fp32-cached",
)

MODES = {
    # For the test suite: every code path, the least work (about a minute on 2 cores).
    "smoke": BenchConfig(
        examples=20,
        epochs=2,
        repetitions=1,
        n_sweep=(10, 20),
        epochs_for_n_sweep=1,
        e_sweep=(1, 2),
        examples_for_e_sweep=10,
        pool_per_class=4,
        test_per_class=4,
        latency_samples=5,
        latency_batch=4,
        vision_per_class=1,
        vision_test_per_class=1,
        vision_epochs=1,
        # The least ExecuTorch work that covers its path: one XNNPACK backbone, one head training program.
        executorch=("vision-executorch-fp32-cached",),
    ),
    # 5 to 10 minutes on 2 cores (the per-step baselines take most of it).
    "quick": BenchConfig(
        examples=160,
        epochs=3,
        repetitions=3,
        n_sweep=(100, 300, 1000),
        epochs_for_n_sweep=1,
        e_sweep=(1, 5, 20),
        examples_for_e_sweep=80,
        pool_per_class=200,
        test_per_class=40,
        latency_samples=30,
        latency_batch=32,
        vision_per_class=10,
        vision_test_per_class=10,
        vision_epochs=3,
        executorch=EXECUTORCH_ROWS,
    ),
    # 28 minutes on 2 cores (measured 2026-11-23); N past the pool (1,500 articles) reuses
    # articles, each made new (see worker.take).
    "full": BenchConfig(
        examples=1000,
        epochs=5,
        repetitions=3,
        n_sweep=(100, 1000, 3000, 10000),
        epochs_for_n_sweep=1,
        e_sweep=(1, 5, 10, 20),
        examples_for_e_sweep=200,
        pool_per_class=300,
        test_per_class=60,
        latency_samples=100,
        latency_batch=32,
        vision_per_class=50,
        vision_test_per_class=50,
        vision_epochs=5,
        executorch=EXECUTORCH_ROWS,
    ),
}
