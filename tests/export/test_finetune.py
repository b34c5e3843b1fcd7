"""Server-side fine-tuning: each control, shown by its effect on a real EfficientNet-Lite0.

Images run at 64 px and a handful per class, so each test takes seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from device_runtime.image import preprocess
from edgeft.config import FineTuneConfig
from edgeft.errors import ConfigError
from edgeft.manifest import InputSpec
from export.adapters import adapter_for
from export.finetune import block_learning_rates, fine_tune, image_tunable, unfrozen_depth
from export.vision import VISION_MODELS

SPEC = InputSpec(
    modality="image",
    input_names=["pixel_values"],
    image_size=[64, 64],
    pixel_mean=[127.0] * 3,
    pixel_std=[128.0] * 3,
    channel_order="RGB",
    layout="NCHW",
)
CLASSES = ["trouser", "bag", "sneaker"]


@pytest.fixture(scope="module")
def pretrained() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in VISION_MODELS["efficientnet-lite0"].build().state_dict().items()}


@pytest.fixture(scope="module")
def data(fashion):
    images, labels = fashion["server"]
    keep = [i for i, label in enumerate(labels) if label in CLASSES]
    return images[keep], [labels[i] for i in keep]  # 12 images, 3 classes


def _tunable(module):
    """The module as its adapter cuts it into blocks, fed at the tests' 64 px."""
    return image_tunable(module, adapter_for(module).blocks(module), lambda x: preprocess(x, SPEC))


def _run(pretrained, data, **changes):
    module = VISION_MODELS["efficientnet-lite0"].build()
    module.load_state_dict(pretrained)
    config = FineTuneConfig(**{"batch_size": 4, "epochs": 1, "lr": 1e-3, "validation_fraction": 0.25, **changes})
    report = fine_tune(_tunable(module), *data, CLASSES, config)
    return module, report


def _changed(module, pretrained, prefix: str) -> bool:
    return any(not torch.equal(v, pretrained[k]) for k, v in module.state_dict().items() if k.startswith(prefix))


def test_a_frozen_backbone_keeps_every_weight_and_statistic(pretrained, data):
    module, report = _run(pretrained, data, trainable_blocks=0)
    assert not _changed(module, pretrained, "net.")  # BatchNorm running statistics included
    assert report.epochs[0]["unfrozen_blocks"] == 0


def test_only_the_last_n_blocks_and_the_top_train(pretrained, data):
    module, report = _run(pretrained, data, trainable_blocks=2)
    assert report.epochs[0]["unfrozen_blocks"] == 2
    assert _changed(module, pretrained, "net._blocks.15.") and _changed(module, pretrained, "net._blocks.14.")
    assert _changed(module, pretrained, "net._conv_head.")
    assert not any(_changed(module, pretrained, f"net._blocks.{i}.") for i in range(14))
    assert not _changed(module, pretrained, "net._conv_stem.")


def test_gradual_unfreezing_adds_one_block_every_k_epochs(pretrained, data):
    module, report = _run(pretrained, data, trainable_blocks=1, unfreeze_every=1, epochs=3)
    assert [r["unfrozen_blocks"] for r in report.epochs] == [1, 2, 3]
    assert _changed(module, pretrained, "net._blocks.13.")
    assert not _changed(module, pretrained, "net._blocks.12.")
    assert [unfrozen_depth(FineTuneConfig(trainable_blocks=0, unfreeze_every=2), e, 16) for e in range(6)] == [0, 0, 1, 1, 2, 2]


def test_early_stopping_stops_and_keeps_the_best_epoch(pretrained, data):
    # A learning rate far too high for fine-tuning: the validation loss soon stops improving.
    _module, report = _run(pretrained, data, lr=0.5, epochs=8, patience=1, trainable_blocks=1)
    assert report.stopped_early and len(report.epochs) < 8
    losses = [r["val_loss"] for r in report.epochs]
    assert report.best_epoch == int(np.argmin(losses)) + 1
    assert losses[-1] >= min(losses)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("linear", [1.0, 1.0, 0.75, 0.5, 0.25]), ("cosine", [1.0, 1.0, 0.853553, 0.5, 0.146447]), ("constant", [1.0] * 5)],
)
def test_warmup_then_decay_gives_the_designed_learning_rates(pretrained, data, schedule, expected):
    # 9 training images in one batch: one step per epoch, so each epoch's LR is one step's.
    _, report = _run(pretrained, data, trainable_blocks=0, batch_size=16, epochs=5, warmup_fraction=0.2, schedule=schedule)
    np.testing.assert_allclose([r["lr"] for r in report.epochs], np.array(expected) * 1e-3, rtol=1e-5)


def test_layer_wise_decay_lowers_the_lr_of_each_deeper_block():
    rates = block_learning_rates(FineTuneConfig(lr=1e-3, layer_lr_decay=0.5), 4)
    np.testing.assert_allclose(rates, [1e-3 / 16, 1e-3 / 8, 1e-3 / 4, 1e-3 / 2])
    assert block_learning_rates(FineTuneConfig(lr=1e-3), 3) == [1e-3] * 3


def test_dropout_changes_training_and_a_dry_run_uses_two_batches(pretrained, data, tmp_path):
    _, plain = _run(pretrained, data, trainable_blocks=0, dropout=0.0)
    _, dropped = _run(pretrained, data, trainable_blocks=0, dropout=0.9)
    assert plain.epochs[0]["train_loss"] != dropped.epochs[0]["train_loss"]
    _, dry = _run(pretrained, data, trainable_blocks=0, batch_size=2, epochs=5, dry_run=True)
    assert len(dry.epochs) == 1


def test_metrics_log_and_plot_are_written(pretrained, data, tmp_path):
    module = VISION_MODELS["efficientnet-lite0"].build()
    config = FineTuneConfig(batch_size=4, epochs=2, trainable_blocks=1, validation_fraction=0.25)
    report = fine_tune(_tunable(module), *data, CLASSES, config, log_dir=tmp_path)
    log = json.loads(report.log.read_text())
    assert len(log["epochs"]) == 2 and log["config"]["trainable_blocks"] == 1
    for split in ("train", "val"):
        assert {f"{split}_{k}" for k in ("loss", "accuracy", "macro_precision", "macro_recall", "macro_f1")} <= set(
            log["epochs"][0]
        )
    assert report.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_invalid_controls_are_config_errors():
    with pytest.raises(ConfigError, match="layer_lr_decay must be in"):
        FineTuneConfig(layer_lr_decay=0)
    with pytest.raises(ConfigError, match="patience must be a positive integer"):
        FineTuneConfig(patience=0)
    with pytest.raises(ConfigError, match="dropout must be in"):
        FineTuneConfig(dropout=1.0)


def test_augmented_batches_train_on_other_pixels_and_text_is_refused(pretrained, data):
    _, plain = _run(pretrained, data)
    _, augmented = _run(pretrained, data, augment=True, augment_hflip=True)
    assert augmented.epochs[0]["train_loss"] != plain.epochs[0]["train_loss"]
    with pytest.raises(ConfigError, match="augment applies to images"):
        fine_tune(None, ["a text"], ["bag"], CLASSES, FineTuneConfig(augment=True))
