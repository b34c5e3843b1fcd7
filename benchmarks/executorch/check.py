"""Three checks behind the ExecuTorch rows' figures, in ONE process of ExecuTorch's environment.

``$(.venv/bin/python -m benchmarks.executorch.env) -m benchmarks.executorch.check [CACHE]`` (CACHE: a results folder's
``cache``, default quick mode's, after ``make bench`` has filled it).

1. Backbone speed without the load of a shared machine between rows: the
   edgeft INT8 bundle's ORT backbone and ExecuTorch's XNNPACK FP32 and INT8
   programs over the same N texts, in turn, three times (medians).
2. Whose accuracy the ExecuTorch rows report: a torch head trained with SGD
   and with AdamW on the same XNNPACK features, batches and schedule. If SGD
   scores as the ExecuTorch rows do, the gap is the optimizer's (ExecuTorch's
   Python API has SGD only), not ExecuTorch's.
3. That ExecuTorch computes what torch does: the XNNPACK features against
   torch's MiniLM, and one ``forward_backward`` of the head's training
   program against torch's loss and gradients on the same batch.
"""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path

REPEATS = 3


def main(cache: Path) -> None:
    import torch

    from benchmarks.executorch.alternatives import WEIGHT_DECAY, InferenceProgram, TextCachedFp32
    from benchmarks.executorch.export import FOLDER, TEXT_INT8, MiniLMEncoder
    from benchmarks.speed.config import INT8_BUNDLE, MODES
    from benchmarks.speed.per_step import train_per_step
    from device_runtime import Personalizer, TruncationWarning
    from edgeft.bundle import Bundle

    warnings.simplefilter("ignore", TruncationWarning)
    config = MODES["quick"]
    fp32 = TextCachedFp32(cache, config.batch_size, config.lr)
    fp32.load()
    int8 = InferenceProgram(cache / FOLDER / TEXT_INT8, config.batch_size)
    edgeft = Personalizer(Bundle.load(cache / INT8_BUNDLE))
    data = fp32.load_data()
    texts, labels = data["pool"][0][: config.examples], data["pool"][1][: config.examples]
    backbones = {
        "edgeft bundle, ORT INT8": lambda: edgeft.backbone.features(texts, batch_size=config.batch_size),
        "ExecuTorch XNNPACK FP32": lambda: fp32.encoder.features(fp32.inputs(texts)),
        "ExecuTorch XNNPACK INT8": lambda: int8.features(fp32.inputs(texts)),
    }
    seconds: dict[str, list[float]] = {name: [] for name in backbones}
    for _ in range(REPEATS):  # in turn, so each sees the same load
        for name, run in backbones.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    print(f"One backbone pass over {len(texts)} BBC articles (median of {REPEATS}, in turn in one process):")
    for name, values in seconds.items():
        print(f"  {name}: {statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})")

    train, test = fp32.encoder.features(fp32.inputs(texts)), fp32.encoder.features(fp32.inputs(data["test"][0]))
    targets, test_targets = fp32.targets(labels), fp32.targets(data["test"][1])
    print(f"A torch head on the same XNNPACK FP32 features, {config.epochs} epochs, edgeft's batches and schedule:")
    for name, optimizer in [("SGD", torch.optim.SGD), ("AdamW", torch.optim.AdamW)]:
        head = torch.nn.Linear(train.shape[1], len(fp32.classes))
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        opt = optimizer(head.parameters(), lr=config.lr, weight_decay=WEIGHT_DECAY)

        def step(rows: list, batch_targets, lr: float, head=head, opt=opt) -> None:
            for group in opt.param_groups:
                group["lr"] = lr
            loss = torch.nn.functional.cross_entropy(head(torch.stack(rows)), torch.from_numpy(batch_targets))
            opt.zero_grad()
            loss.backward()
            opt.step()

        train_per_step(step, list(train), targets, config.epochs, fp32.config)
        with torch.no_grad():
            accuracy = float((head(test).argmax(1).numpy() == test_targets).mean())
        print(f"  {name}: held-out accuracy {accuracy:.3f} (n={len(test_targets)})")

    batch = fp32.inputs(texts[: config.batch_size])
    with torch.no_grad():
        reference = MiniLMEncoder()(*batch)
    print(
        f"XNNPACK FP32 features against torch's MiniLM: max |difference| {(reference - train[: config.batch_size]).abs().max():.1e}"
    )
    fp32.trainer.reset()
    features, labels_ = train[: config.batch_size], torch.from_numpy(targets[: config.batch_size])
    loss = fp32.trainer.module.forward_backward("forward", [features, labels_])[0]
    head = torch.nn.Linear(train.shape[1], len(fp32.classes))
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    torch_loss = torch.nn.functional.cross_entropy(head(features), labels_)
    torch_loss.backward()
    gradients = fp32.trainer.module.named_gradients()
    difference = max(float((gradients[f"head.{n}"] - p.grad).abs().max()) for n, p in head.named_parameters())
    print(
        f"Head program against torch: loss {float(loss):.6f} vs {float(torch_loss):.6f}, max |gradient difference| {difference:.1e}"
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "cache", nargs="?", type=Path, default=Path("benchmarks/results/quick/cache"), help="a results folder's cache"
    )
    main(parser.parse_args().cache)
