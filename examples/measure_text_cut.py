"""Head-only vs text cut bundles (--device-trainable-blocks N, --device-lora R) on Rotten Tomatoes, by learning rate.

Exports MiniLM (INT8 dynamic frozen part, max_length 64, head trained on 50
Rotten Tomatoes snippets per class at the row's learning rate, which the
bundle then ships as its default), personalizes each for 10 epochs on 200
other snippets per class and scores on 250 held-out ones per class.
Run: .venv/bin/python -m examples.measure_text_cut [output-folder]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from device_runtime import Personalizer
from edgeft.config import ExportConfig, RuntimeConfig, TrainConfig
from example_data import minilm_path, rotten_tomatoes, split_per_class
from export import ServerData, export_bundle

EPOCHS, MAX_LENGTH = 10, 64
# (trainable blocks, LoRA rank, learning rate)
ROWS = [
    (0, 0, 1e-2),
    (1, 0, 1e-2),
    (1, 0, 1e-3),
    (1, 0, 1e-4),
    (2, 0, 1e-3),
    (2, 0, 1e-4),
    (1, 8, 1e-3),
    (2, 8, 1e-3),
    (2, 8, 1e-2),
]


def main(out: Path) -> None:
    server, local, test = split_per_class(*rotten_tomatoes(), [50, 200, 250], seed=0)
    print(f"{EPOCHS} epochs on {len(local[0])} snippets, scored on {len(test[0])} held-out ones; max_length {MAX_LENGTH}.\n")
    print("| trains on device | lr | export s | bundle MB | cached KB / text | shipped acc | personalized acc | s / epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for n, rank, lr in ROWS:
        path = out / f"minilm-n{n}-r{rank}-lr{lr:g}"
        config = ExportConfig(
            name=path.name,
            max_length=MAX_LENGTH,
            quantization="int8-dynamic",
            accept_quality_loss=True,
            device_trainable_blocks=n,
            device_lora_rank=rank,
        )
        started = time.perf_counter()
        manifest = export_bundle(minilm_path(), path, data=ServerData(*server), config=config, train_config=TrainConfig(lr=lr))
        exported = time.perf_counter() - started
        p = Personalizer.from_bundle(path, runtime=RuntimeConfig(cache_dir=str(out / "features" / path.name)))
        shipped = p.score(*test)
        p.fit(*local, epochs=EPOCHS, validation_fraction=0.0, accept="always")
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        what = "the head" if n == 0 else f"last {n} layer(s) + head" + (f", LoRA r{rank}" if rank else "")
        print(
            f"| {what} | {lr:g} | {exported:.0f} | {size:.1f} | {manifest.backbone.feature_size * 4 / 1e3:.1f} | "
            f"{shipped:.3f} | {p.score(*test):.3f} | {p.report_.train_seconds / EPOCHS:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
