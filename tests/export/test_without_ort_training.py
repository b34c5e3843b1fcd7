"""Exporting where onnxruntime-training cannot load (CPython 3.13, aarch64): step graphs only, and a bundle that trains.

The export runs in a subprocess whose import system refuses ``onnxruntime.training``, as an interpreter without the
training wheel does; the bundle is then personalized here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.config import Engine, RuntimeConfig
from edgeft.errors import BundleError, ConfigError
from edgeft.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
NO_TRAINING = """
import importlib.abc, sys

class NoTraining(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "onnxruntime.training" or name.startswith("onnxruntime.training."):
            raise ImportError(f"No module named {name!r}")

sys.meta_path.insert(0, NoTraining())
"""
EXPORT = """
import json, warnings
from edgeft.config import ExportConfig
from example_data import minilm_path
from export import ServerData, export_bundle

folder, texts, labels = json.loads(sys.stdin.read())
config = ExportConfig(
    name="no-ort", max_length=16, device_trainable_blocks=1, device_lora_rank=4, quantization="none", accept_quality_loss=True
)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    export_bundle(minilm_path(), folder, data=ServerData(texts, labels), config=config)
print(json.dumps([f"{w.category.__name__}: {w.message}" for w in caught if "Artifacts" in w.category.__name__]))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, bbc_splits) -> tuple[Path, list[str]]:
    """A LoRA bundle (MiniLM's last layer and the head) exported without onnxruntime-training, and its warnings."""
    folder = tmp_path_factory.mktemp("no-ort") / "lora"
    texts, labels = bbc_splits["server"]
    result = subprocess.run(
        [sys.executable, "-c", NO_TRAINING + EXPORT],
        input=json.dumps([str(folder), texts, labels]),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return folder, json.loads(result.stdout.strip().splitlines()[-1])


def test_the_exporter_writes_step_graphs_only_and_says_so_once(exported):
    folder, warned = exported
    manifest = Bundle.load(folder).manifest
    assert manifest.head.artifact_sets == ("step",) and manifest.head.lora_rank == 4
    assert not set(layout.HEAD_FILES) & set(manifest.files)
    assert {layout.STEP_MODEL, layout.STEP_EVAL_MODEL, layout.PARAMETERS} <= set(manifest.files)
    assert len(warned) == 1
    assert warned[0].startswith("OrtArtifactsWarning: ") and "onnxruntime-training-cpu 1.19.2 installs" in warned[0]


def test_the_bundle_personalizes_through_its_step_graphs(exported, bbc_splits, tmp_path):
    texts, labels = bbc_splits["user"]
    p = Personalizer.from_bundle(exported[0], runtime=RuntimeConfig(cache_dir=str(tmp_path / "features")))
    shipped = p.head_parameters()
    p.fit(texts[:20], labels[:20], epochs=2, batch_size=8, lr=1e-3, validation_fraction=0.0, accept="always")
    assert p.engine is Engine.STEP and np.isfinite(p.history_).all()
    trained = p.head_parameters()
    assert any(not np.array_equal(trained[name], shipped[name]) for name in shipped if ".lora_" in name)


def test_engine_ort_on_it_is_refused_with_the_fix(exported):
    with pytest.raises(ConfigError, match="ships no ORT training artifacts .* re-export it where onnxruntime-training-cpu"):
        Personalizer.from_bundle(exported[0], runtime=RuntimeConfig(engine="ort"))


def test_the_schema_refuses_trainable_blocks_with_neither_artifact_set(exported):
    data = Bundle.load(exported[0]).manifest.to_dict()
    data["head"]["step_batch"] = 0
    with pytest.raises(BundleError, match="needs ORT's training artifacts or step graphs"):
        Manifest.from_dict(data)
