"""The device side runs where torch, transformers and optimum cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

DEVICE_SCRIPT = """
import sys, warnings
class Forbidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "optimum", "sentence_transformers"}:
            raise ImportError(f"{name} is not installed on this device")
sys.meta_path.insert(0, Forbidden())
warnings.simplefilter("ignore")

from device_runtime import Personalizer
p = Personalizer.from_bundle(sys.argv[1])
texts = ["Shares rose after the bank's profits beat forecasts.", "The striker scored twice in the cup final."]
p.fit(texts, ["business", "sports"], epochs=2)
p.save(sys.argv[2])
print(Personalizer.load(sys.argv[2]).predict(texts).tolist())
print(sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers", "optimum"}))
"""


def test_device_side_personalizes_and_predicts_without_torch(minilm_bundle: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DEVICE_SCRIPT), str(minilm_bundle), str(tmp_path / "state")],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    predictions, heavy_modules = result.stdout.strip().splitlines()[-2:]
    assert predictions == "['business', 'sports']"
    assert heavy_modules == "[]"
