"""edgeft on sensor windows: BasicMotions (a wrist-worn watch's accelerometer and gyroscope, 6 x 100 steps).

1. Workstation: export ``cnn1d``, edgeft's small 1-D CNN, trained on the 40 training series; the manifest
   declares the input (6 channels x 100 steps, the server's per-channel mean and std, windows of other
   lengths cropped or padded).
2. Device: a user wears the watch turned a quarter on the wrist (x and y axes swapped). The shipped model
   reads that user's windows; the user labels 5 windows per activity, and ``fit`` personalizes the head.
3. Compare the shipped and the personalized head on the user's other 20 windows; save and load the state.

Run: ``python -m examples.sensor_basicmotions`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import warnings
from pathlib import Path

import numpy as np

from device_runtime import Personalizer
from edgeft.config import ExportConfig
from edgeft.signing import UnsignedBundleWarning
from example_data import basic_motions
from export import ServerData, export_bundle

SWAP_XY = [1, 0, 2, 4, 3, 5]  # accelerometer x<->y, gyroscope x<->y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="sensor-output", help="where the bundle and the state go (default: %(default)s)")
    parser.add_argument("--shots", type=int, default=5, help="the user's labelled windows per activity (default: %(default)s)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UnsignedBundleWarning)  # the example's bundle is unsigned on purpose

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    data = basic_motions()
    X, labels = data["train"]
    manifest = export_bundle("cnn1d", out / "bundle", data=ServerData(X, labels), config=ExportConfig(name="basic-motions"))
    spec = manifest.input
    print(f"exported {out / 'bundle'}: {spec.tensor_shape[0]} channels x {spec.tensor_shape[1]} steps, {spec.length_policy}")
    print(f"server validation accuracy {manifest.metrics['validation_accuracy']:.2f}, {manifest.backbone.precision} backbone")

    X_user, y_user = data["test"]
    X_user, y_user = X_user[:, SWAP_XY], np.array(y_user)
    own = np.concatenate([np.flatnonzero(y_user == label)[: args.shots] for label in sorted(set(y_user))])
    rest = np.setdiff1d(np.arange(len(y_user)), own)

    p = Personalizer.from_bundle(out / "bundle")
    shipped = p.score(X_user[rest], list(y_user[rest]))
    p.fit(X_user[own], list(y_user[own]), epochs=100)
    print(f"fit: {p.report_.reason}")
    personalized = p.score(X_user[rest], list(y_user[rest]))
    p.save(out / "state")
    restored = Personalizer.load(out / "state")
    assert restored.score(X_user[rest], list(y_user[rest])) == personalized
    print(f"user with swapped axes, {len(rest)} held-out windows: shipped {shipped:.2f} -> personalized {personalized:.2f}")


if __name__ == "__main__":
    main()
