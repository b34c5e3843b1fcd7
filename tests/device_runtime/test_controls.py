"""Every training control does what TrainConfig says it does."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from device_runtime.acceptance import validation_split
from device_runtime.trainer import epoch_order, learning_rate_at
from edgeft.config import TrainConfig
from edgeft.errors import ConfigError


def test_epochs_and_batch_size_set_the_number_of_steps(make_personalizer, user):
    p = make_personalizer().fit(*user, epochs=4, batch_size=10, accept="always")
    r = p.report_
    assert r.epochs == 4 and len(p.history_) == 4
    assert r.steps == 4 * math.ceil(r.train_examples / 10)
    assert r.train_examples + r.validation_examples == len(user[0])


def test_warmup_then_linear_or_cosine_decay_is_set_per_step():
    linear = TrainConfig(lr=1.0, warmup_steps=4, schedule="linear")
    assert [learning_rate_at(s, 14, linear) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert learning_rate_at(4, 14, linear) == 1.0 and learning_rate_at(9, 14, linear) == pytest.approx(0.5)
    cosine = TrainConfig(lr=1.0, warmup_steps=4, schedule="cosine")
    assert learning_rate_at(9, 14, cosine) == pytest.approx(0.5)
    assert learning_rate_at(6, 14, cosine) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))
    assert learning_rate_at(7, 14, TrainConfig(lr=0.3, schedule="constant")) == 0.3


def test_lr_changes_how_far_the_head_moves(make_personalizer, user):
    small = make_personalizer().fit(*user, epochs=2, lr=1e-4, accept="always").head_parameters()
    large = make_personalizer().fit(*user, epochs=2, lr=1e-1, accept="always").head_parameters()
    shipped = make_personalizer().head_parameters()
    moved = {name: np.abs(p["head.weight"] - shipped["head.weight"]).sum() for name, p in (("s", small), ("l", large))}
    assert moved["l"] > 10 * moved["s"]


def test_weight_decay_shrinks_the_head(make_personalizer, user):
    norms = [
        np.linalg.norm(make_personalizer().fit(*user, weight_decay=wd, lr=5e-2, accept="always").head_parameters()["head.weight"])
        for wd in (0.0, 5.0)
    ]
    assert norms[1] < 0.9 * norms[0]


def test_validation_split_holds_out_a_share_of_every_class():
    targets = np.repeat(np.arange(5), [10, 10, 10, 10, 1])
    train, val = validation_split(targets, 0.2, seed=0)
    assert np.bincount(targets[val], minlength=5).tolist() == [2, 2, 2, 2, 0]  # a lone example stays in training
    assert set(train) | set(val) == set(range(len(targets))) and not set(train) & set(val)
    assert len(validation_split(targets, 0.0, seed=0)[1]) == 0


def test_the_exporter_and_the_device_hold_out_the_same_rows_for_the_same_labels():
    names = ["sport", "tech", "sport", "business", "tech", "sport", "business", "tech", "sport", "business"]
    classes = sorted(set(names))
    targets = np.array([classes.index(name) for name in names])  # as the device numbers them
    by_name, by_index = validation_split(names, 0.34, seed=3), validation_split(targets, 0.34, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(by_name, by_index))


def test_early_stopping_stops_after_patience_epochs_and_keeps_the_best_epoch(make_personalizer, user):
    p = make_personalizer().fit(*user, epochs=200, lr=0.5, schedule="constant", patience=2, accept="always")
    r = p.report_
    assert r.stopped == "early_stopping"
    assert r.epochs == r.best_epoch + 2 < 200


def test_early_stopping_metric_is_selectable(make_personalizer, user):
    p = make_personalizer().fit(*user, epochs=50, patience=3, metric="accuracy")
    assert p.report_.metric == "accuracy" and p.report_.stopped == "early_stopping"


def test_balanced_sampling_draws_rare_classes_as_often_as_common_ones():
    targets = np.array([0] * 90 + [1] * 10)
    drawn = np.concatenate([targets[epoch_order(np.random.default_rng(s), targets, True)] for s in range(20)])
    assert 0.4 < drawn.mean() < 0.6
    plain = targets[epoch_order(np.random.default_rng(0), targets, False)]
    assert plain.mean() == pytest.approx(0.1)


def test_balanced_sampling_runs_end_to_end_on_skewed_local_data(make_personalizer, user):
    texts, labels = user
    keep = [i for i, label in enumerate(labels) if label != "tech" or labels[: i + 1].count("tech") <= 3]
    skewed = [texts[i] for i in keep], [labels[i] for i in keep]
    p = make_personalizer().fit(*skewed, balanced_sampling=True, accept="always")
    assert p.report_.stopped == "completed"


def test_max_seconds_bounds_a_fit(make_personalizer, user):
    p = make_personalizer()
    p.transform(user[0])  # features cached: the budget goes to training
    p.fit(*user, epochs=100_000, max_seconds=0.5, accept="always")
    assert p.report_.stopped == "time_budget"
    assert p.report_.train_seconds < 2.0 and p.report_.epochs < 100_000


def test_a_time_budget_spent_on_features_stops_before_training_and_keeps_the_head(make_personalizer, user):
    p = make_personalizer(cache_dir=None)  # nothing cached: the backbone has work to do
    before = p.head_parameters()
    p.fit(*user, max_seconds=1e-6)  # over before the backbone's first chunk
    assert p.report_.stopped == "time_budget" and not p.report_.accepted and p.report_.steps == 0
    assert f"after features of 0 of {len(user[0])} new examples" in p.report_.reason
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(value, before[name])


def test_a_cancel_made_while_nothing_runs_does_not_stop_the_next_fit(make_personalizer, user):
    p = make_personalizer()
    p.cancel()
    p.fit(*user, epochs=2)
    assert p.report_.stopped == "completed" and p.report_.steps > 0


def test_cancel_from_another_thread_stops_the_fit_and_keeps_the_current_head(make_personalizer, user):
    p = make_personalizer()
    before = p.head_parameters()
    started = threading.Event()
    worker = threading.Thread(target=lambda: p.fit(*user, epochs=100_000, progress=lambda _: started.set()))
    worker.start()
    assert started.wait(30)
    p.cancel()
    worker.join(30)
    assert not worker.is_alive()
    assert p.report_.stopped == "cancelled" and not p.report_.accepted
    assert p.current_version == 0
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(value, before[name])


def test_progress_callback_reports_features_then_every_epoch(make_personalizer, user, tmp_path):
    seen = []
    make_personalizer(cache_dir=str(tmp_path)).fit(*user, epochs=3, progress=seen.append)
    features = [s for s in seen if s.stage == "features"]
    train = [s for s in seen if s.stage == "train"]
    assert features[-1].done == features[-1].total == len(set(user[0]))
    assert [(s.done, s.total) for s in train] == [(1, 3), (2, 3), (3, 3)]
    assert all(s.loss is not None and np.isfinite(s.loss) for s in train)


def test_partial_fit_continues_from_the_current_head(make_personalizer, user):
    texts, labels = user
    p = make_personalizer().fit(texts[:30], labels[:30], accept="always")
    after_fit = p.head_parameters()
    p.partial_fit(texts[30:], labels[30:], epochs=1, accept="always")
    fresh = make_personalizer().fit(texts[30:], labels[30:], epochs=1, accept="always")
    assert p.current_version == 2
    assert not np.allclose(p.head_parameters()["head.weight"], after_fit["head.weight"])
    assert not np.allclose(p.head_parameters()["head.weight"], fresh.head_parameters()["head.weight"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \[0, 1\)"),
        ({"patience": 0}, "patience must be a positive integer"),
        ({"max_seconds": -1}, "max_seconds must be"),
        ({"metric": "auc"}, "metric must be one of loss, accuracy, macro_f1"),
        ({"accept": "never"}, "accept must be one of if_better, always"),
        ({"weight_decay": -0.1}, "weight_decay must be"),
        ({"momentum": 0.9}, "Unknown config key"),
    ],
)
def test_invalid_controls_raise_config_errors(make_personalizer, user, change, message):
    with pytest.raises(ConfigError, match=message):
        make_personalizer().fit(*user, **change)
