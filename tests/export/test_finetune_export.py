"""Fine-tuning (and the Optuna search) as part of an export, for text and vision backbones."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from edgeft.bundle import Bundle
from edgeft.cli import main
from edgeft.config import ExportConfig, FineTuneConfig
from edgeft.data import write_examples
from example_data import minilm_path
from export import FineTuning, ServerData, export_bundle


def test_cli_fine_tunes_minilm_then_exports_it(bbc_splits, minilm_onnx, tmp_path, capsys):
    texts, labels = bbc_splits["server"]
    write_examples(tmp_path / "server.csv", texts, labels)
    out = tmp_path / "bundle"
    code = main(
        [
            "export",
            "--model",
            str(minilm_path()),
            "--train-data",
            str(tmp_path / "server.csv"),
            "--output",
            str(out),
            "--finetune",
            "--dry-run",
            "--ft-batch-size",
            "4",
            "--ft-lr",
            "1e-3",
            "--max-length",
            "32",
            "--quantize",
            "none",
            "--epochs",
            "3",
        ]
    )
    assert code == 0, capsys.readouterr().err
    metrics = Bundle.load(out).manifest.metrics
    assert metrics["finetune_epochs_run"] == 1 and metrics["finetune_config"]["dry_run"] is True
    log = json.loads((tmp_path / "bundle-finetune" / "finetune.json").read_text())
    assert {"train_loss", "val_loss", "val_macro_f1"} <= set(log["epochs"][0])
    assert (tmp_path / "bundle-finetune" / "finetune.png").is_file()
    # The shipped backbone is the fine-tuned one, not the pretrained MiniLM.
    tok = Tokenizer.from_file(str(minilm_onnx[1]))
    enc = tok.encode("Shares fell sharply on Monday.")
    feeds = {"input_ids": np.array([enc.ids]), "attention_mask": np.array([enc.attention_mask])}
    before = ort.InferenceSession(str(minilm_onnx[0])).run(["sentence_embedding"], feeds)[0]
    after = ort.InferenceSession(str(out / "backbone.onnx")).run(["sentence_embedding"], feeds)[0]
    assert np.abs(after - before).max() > 1e-4


def test_tune_searches_then_fine_tunes_efficientnet(fashion, tmp_path):
    images, labels = fashion["server"]
    manifest = export_bundle(
        "efficientnet-lite0",
        tmp_path / "b",
        data=ServerData(images, labels),
        config=ExportConfig(quantization="none"),
        fine_tuning=FineTuning(FineTuneConfig(batch_size=2, dry_run=True), trials=2, log_dir=tmp_path / "log"),
    )
    m = manifest.metrics
    assert m["tune_trials"] == 2
    assert set(m["tune_best_params"]) == {"lr", "weight_decay", "dropout", "trainable_blocks"}
    assert m["finetune_config"]["lr"] == m["tune_best_params"]["lr"]
    assert m["parity_max_abs_diff"] < 1e-4
