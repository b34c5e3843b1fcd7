"""The device side installed alone, as a device under Python 3.13 has it, against bundles exported here.

Python 3.13 has no onnxruntime-training wheel, so its base install brings plain
onnxruntime, and the bundles' step graphs train (the numpy engine where a bundle has none). tests/device_only runs inside that
environment and compares with what this (ORT training) environment computed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft.config import ExportConfig, RuntimeConfig
from example_data import minilm_path
from tools import device_env

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv-device"
SUITE = REPO / "tests" / "device_only"

#: The numpy engine's run that both environments repeat: seeded, always accepted, so its result is deterministic.
FIT = {"epochs": 8, "accept": "always"}


def export_fp32_minilm(path: Path, bbc_splits: dict) -> Path:
    """MiniLM with an FP32 backbone: ORT's INT8 kernels differ between releases, FP32 ones agree to float rounding."""
    from export import ServerData, export_bundle

    config = ExportConfig(name="minilm-bbc-fp32", quantization="none", license="apache-2.0")
    export_bundle(minilm_path(), path, data=ServerData(*bbc_splits["server"]), config=config)
    return path


def export_fp32_cut(path: Path, bbc_splits: dict, lora_rank: int = 0) -> Path:
    """MiniLM cut before its last layer (FP32 both sides, 32 tokens), with LoRA on that layer where ``lora_rank``."""
    from export import ServerData, export_bundle

    config = ExportConfig(
        name=path.name, quantization="none", max_length=32, device_trainable_blocks=1, device_lora_rank=lora_rank
    )
    export_bundle(minilm_path(), path, data=ServerData(*bbc_splits["server"]), config=config)
    return path


def export_image_cut(path: Path, fashion: dict) -> Path:
    """A small CNN of 32 px images (three conv stages, the middle one strided) whose last two stages train on the
    device: a vision last-blocks bundle, FP32, exported in seconds (EfficientNet-Lite0 would take a minute)."""
    import torch
    from torch import nn

    from edgeft.config import ImagePreprocessing
    from export import BackboneOptions, ServerData, export_bundle

    def stage(channels_in: int, channels_out: int, stride: int = 1) -> nn.Module:
        conv = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1)
        return nn.Sequential(conv, nn.BatchNorm2d(channels_out), nn.ReLU())

    torch.manual_seed(0)
    net = nn.Sequential(stage(3, 8), stage(8, 16, stride=2), stage(16, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    config = ExportConfig(name=path.name, quantization="none", device_trainable_blocks=2)
    small = BackboneOptions(preprocessing=ImagePreprocessing(size=(32, 32)))
    export_bundle(net, path, data=ServerData(*fashion["server"]), config=config, backbone=small)
    return path


def write_reference(folder: Path, bundles: dict[str, Path], bbc_splits: dict, fashion: dict) -> Path:
    """What this environment predicts and trains, for the device suite to compare with."""
    folder.mkdir()
    texts = bbc_splits["test"][0][::15]
    user_texts, user_labels = bbc_splits["user"]
    images = fashion["test"][0][::5]
    np.save(folder / "images.npy", images)
    user_images, user_image_labels = fashion["server"]
    np.save(folder / "user_images.npy", user_images)
    trained = Personalizer.from_bundle(bundles["fp32"], runtime=RuntimeConfig(engine="numpy")).fit(user_texts, user_labels, **FIT)
    reference = {
        "bundles": {name: str(path) for name, path in bundles.items()},
        "texts": texts,
        "user_texts": user_texts,
        "user_labels": user_labels,
        "user_image_labels": user_image_labels,
        "fit": FIT,
        "proba": {
            name: Personalizer.from_bundle(path).predict_proba(images if name.startswith("image") else texts).tolist()
            for name, path in bundles.items()
        },
        "numpy_fit_proba": trained.predict_proba(texts).tolist(),
        # The cut bundles trained by the step graphs here (ORT 1.19.2), which the device repeats on plain onnxruntime.
        "step_fit_proba": {
            name: Personalizer.from_bundle(bundles[name], runtime=RuntimeConfig(engine="step"))
            .fit(user_texts, user_labels, **FIT)
            .predict_proba(texts)
            .tolist()
            for name in ("cut", "lora")
        },
        "image_cut_fit_proba": Personalizer.from_bundle(bundles["image-cut"], runtime=RuntimeConfig(engine="step"))
        .fit(user_images, user_image_labels, **FIT)
        .predict_proba(images)
        .tolist(),
    }
    (folder / "reference.json").write_text(json.dumps(reference))
    return folder


def test_the_device_only_install_under_python_313_passes_the_device_suite(
    minilm_bundle, effnet_bundle, bbc_splits, fashion, tmp_path
):
    # The device suite's needs beside the base install: a test runner, and the service's extra.
    bin_dir = device_env.ensure_venv(
        VENV, device_env.find_python("3.13"), device_env.build_wheel(tmp_path / "wheel"), extras=("serve",), tools=("pytest>=8",)
    )
    bundles = {
        "int8": minilm_bundle,
        "fp32": export_fp32_minilm(tmp_path / "minilm-fp32", bbc_splits),
        "image": effnet_bundle,
        "cut": export_fp32_cut(tmp_path / "minilm-cut", bbc_splits),
        "lora": export_fp32_cut(tmp_path / "minilm-lora", bbc_splits, lora_rank=4),
        "image-cut": export_image_cut(tmp_path / "image-cut", fashion),
    }
    reference = write_reference(tmp_path / "reference", bundles, bbc_splits, fashion)
    result = run_suite(bin_dir, reference, cwd=tmp_path)
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def run_suite(bin_dir: Path, reference: Path, cwd: Path) -> subprocess.CompletedProcess:
    """tests/device_only under the venv's pytest, from outside the checkout so that only the installed edgeft imports."""
    command = [
        str(bin_dir / "pytest"),
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(SUITE / "pytest.ini"),
        "--rootdir",
        str(SUITE),
        "--durations=5",
        str(SUITE),
    ]
    env = device_env.clean_env(EDGEFT_DEVICE_REFERENCE=str(reference))
    return subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True)


def test_without_the_python_asked_for_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("EDGEFT_PYTHON399", raising=False)
    with pytest.raises(RuntimeError, match=r"No Python 3\.99 found .*`pyenv install 3\.99`.* EDGEFT_PYTHON399"):
        device_env.find_python("3.99")
