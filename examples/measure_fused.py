"""Head-only vs fused bundles (--device-trainable-blocks N) on local data unlike the server's.

Exports EfficientNet-Lite0 (FP32 backbone, head trained on 20 Fashion-MNIST
images per class) with N = 0, 1 and 2 trainable blocks, then personalizes each,
at its bundle's default learning rate, on inverted images (white garments on black: a device whose camera sees
something the server never did) and scores on held-out inverted images.
Run: .venv/bin/python -m examples.measure_fused [output-folder]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from device_runtime import Personalizer
from edgeft.bundle import Bundle
from edgeft.config import ExportConfig, RuntimeConfig
from example_data import fashion_mnist
from export import ServerData, export_bundle
from export.vision import VISION_MODELS

EPOCHS, LOCAL_PER_CLASS, TEST_PER_CLASS = 10, 30, 30


def main(out: Path) -> None:
    vision = VISION_MODELS["efficientnet-lite0"]
    server = fashion_mnist("train", per_class=20, seed=0)
    local_x, local_y = fashion_mnist("train", per_class=LOCAL_PER_CLASS, seed=1)
    test_x, test_y = fashion_mnist("test", per_class=TEST_PER_CLASS, seed=0)
    local_x, test_x = 255 - local_x, 255 - test_x
    print(f"{EPOCHS} epochs on {len(local_y)} inverted images, scored on {len(test_y)} held-out ones.\n")
    print(
        "| trainable on device | default lr | bundle MB | cached floats / image | shipped acc | personalized acc | personalize s |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in (0, 1, 2):
        path = out / f"effnet-n{n}"
        config = ExportConfig(name=f"effnet-n{n}", quantization="none", device_trainable_blocks=n)
        export_bundle(vision.build(), path, data=ServerData(*server), config=config)
        bundle = Bundle.load(path)
        p = Personalizer(bundle, runtime=RuntimeConfig(cache_dir=str(out / "features")))
        shipped = p.score(test_x, test_y)
        started = time.perf_counter()
        p.fit(local_x, local_y, epochs=EPOCHS, validation_fraction=0.0, accept="always")
        seconds = time.perf_counter() - started
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        what = "the head" if n == 0 else f"the last {n} block(s), top and head"
        print(
            f"| {what} | {bundle.manifest.training['lr']:g} | {size:.1f} | {bundle.manifest.backbone.feature_size} | {shipped:.3f} | "
            f"{p.score(test_x, test_y):.3f} | {seconds:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
