"""`edgeft export`: every option documented with its default, and clear errors that leave no bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeft.bundle import Bundle
from edgeft.cli import _parser, main


def test_help_documents_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    export = _parser()._subparsers._group_actions[0].choices["export"]
    options = [a for a in export._actions if "--help" not in a.option_strings]
    assert len(options) > 30
    for action in options:
        assert action.option_strings[-1] in text
        assert "(default:" in action.help or "(required)" in action.help, action.option_strings


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--quantize", "int4"], "invalid choice: 'int4'"),
        (["--image-size", "224,x"], "--image-size must be comma-separated int values"),
        (["--validation-fraction", "1.5"], "validation_fraction must be in [0, 1)"),
        (
            ["--finetune", "--ft-lr", "-1"],
            "fine-tuning (--ft-* options): FineTuneConfig.lr must be a finite number > 0, got -1.0",
        ),
        (["--ft-epochs", "5", "--ft-lr", "0.01"], "--ft-lr, --ft-epochs set fine-tuning, which runs only with --finetune"),
        (["--max-quality-loss", "-1"], "--max-quality-loss must be between 0 and 100 accuracy points, got -1"),
        (["--max-quality-loss", "150"], "--max-quality-loss must be between 0 and 100 accuracy points, got 150"),
    ],
)
def test_a_bad_option_value_is_a_clear_error(argv, message, tmp_path, capsys):
    code = (
        main(["export", "--model", "m.onnx", "--feature-output", "f", "--output", str(tmp_path / "b"), "--labels", "a,b", *argv])
        if argv[0] != "--quantize"
        else None
    )
    if code is None:
        with pytest.raises(SystemExit):
            main(["export", "--model", "m", "--output", str(tmp_path / "b"), *argv])
    else:
        assert code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_folder_that_is_no_model_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "not-a-model").mkdir()
    assert main(["export", "--model", str(tmp_path / "not-a-model"), "--output", str(tmp_path / "b"), "--labels", "a,b"]) == 1
    assert "is not a Hugging Face model folder (no config.json)" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_data_file_without_the_label_column_is_a_clear_error(minilm_onnx, tmp_path, capsys):
    model, tokenizer = minilm_onnx
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t, "topic": "a"}) + "\n" for t in ["one", "two"]))
    code = main(
        [
            "export",
            "--model",
            str(model),
            "--feature-output",
            "sentence_embedding",
            "--tokenizer",
            str(tokenizer),
            "--train-data",
            str(data),
            "--output",
            str(tmp_path / "b"),
        ]
    )
    assert code == 1
    assert "row 1: no column 'label'; columns are 'text', 'topic'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_an_unknown_label_is_a_clear_error(effnet_onnx, fashion, tmp_path, capsys):
    images, labels = fashion["server"]
    np.savez(tmp_path / "data.npz", X=images[:6], y=np.array(labels[:6]))
    code = main(
        [
            "export",
            "--model",
            str(effnet_onnx),
            "--feature-output",
            "features",
            "--train-data",
            str(tmp_path / "data.npz"),
            "--labels",
            "sandal,bag",
            "--output",
            str(tmp_path / "b"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "are not in the bundle's label set ['sandal', 'bag']" in err and "add them to the label set (--labels)" in err
    assert not (tmp_path / "b").exists()


def test_an_onnx_file_without_the_named_output_is_a_clear_error(effnet_onnx, tmp_path, capsys):
    code = main(
        ["export", "--model", str(effnet_onnx), "--feature-output", "logits", "--labels", "a,b", "--output", str(tmp_path / "b")]
    )
    assert code == 1
    assert "has no output 'logits'; its outputs are ['features']" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_text_data_for_an_onnx_file_without_a_tokenizer_asks_for_one(minilm_onnx, tmp_path, capsys):
    model, _ = minilm_onnx
    data = tmp_path / "data.csv"
    data.write_text("text,label\nThe striker scored,sport\nShares fell,business\n")
    code = main(
        [
            "export",
            "--model",
            str(model),
            "--feature-output",
            "sentence_embedding",
            "--train-data",
            str(data),
            "--output",
            str(tmp_path / "b"),
        ]
    )
    assert code == 1
    assert (
        "holds text, but no tokenizer was given: a text backbone needs its tokenizer.json (--tokenizer)"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "b").exists()


def test_export_an_onnx_image_backbone_from_an_image_folder(effnet_onnx, fashion, tmp_path, capsys):
    from PIL import Image

    images, labels = fashion["server"]
    for i, (image, label) in enumerate(zip(images[:12], labels[:12])):
        (tmp_path / "images" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "images" / label / f"{i}.png")
    code = main(
        [
            "export",
            "--model",
            str(effnet_onnx),
            "--feature-output",
            "features",
            "--train-data",
            str(tmp_path / "images"),
            "--quantize",
            "none",
            "--epochs",
            "5",
            "--output",
            str(tmp_path / "b"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    manifest = Bundle.load(tmp_path / "b").manifest
    assert manifest.input.image_size == [224, 224] and manifest.head.trained
    assert sorted(manifest.labels) == sorted(set(labels[:12]))
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "b")]) == 0
    assert "image, 224x224 RGB NCHW, (x - 127,127,127) / 128,128,128" in capsys.readouterr().out


def test_an_image_size_the_backbone_does_not_take_is_a_clear_error(effnet_onnx, tmp_path, capsys):
    code = main(
        [
            "export",
            "--model",
            str(effnet_onnx),
            "--feature-output",
            "features",
            "--image-size",
            "64,64",
            "--labels",
            "a,b",
            "--output",
            str(tmp_path / "b"),
        ]
    )
    assert code == 1
    assert "has shape [None, 3, 224, 224] (NCHW), which does not take 64x64 images" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
