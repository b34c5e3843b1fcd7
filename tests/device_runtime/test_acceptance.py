"""A new head replaces the current one only if it is not worse; every accepted head is a version."""

from __future__ import annotations

import numpy as np
import pytest

from edgeft.errors import StateError


def test_a_better_head_is_accepted_as_a_new_version(make_personalizer, user):
    p = make_personalizer().fit(*user)
    r = p.report_
    assert r.accepted and p.current_version == 1
    assert r.new["loss"] < r.current["loss"]
    assert "not worse" in r.reason and "validation split" in r.reason
    assert p.versions[1]["metrics"]["loss"] == pytest.approx(r.new["loss"])


def test_a_worse_head_is_rejected_and_the_current_one_kept(make_personalizer, user):
    p = make_personalizer().fit(*user)
    good = p.head_parameters()
    p.fit(*user, epochs=1, lr=1e-5)  # barely moves from the shipped head, which is worse than version 1
    r = p.report_
    assert not r.accepted and "worse" in r.reason and r.new["loss"] > r.current["loss"]
    assert p.current_version == 1 and len(p.versions) == 2
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(value, good[name])


def test_a_rejected_partial_fit_restores_the_head_and_its_optimizer_state(make_personalizer, user):
    texts, labels = user
    p = make_personalizer().fit(texts, labels)
    reference = make_personalizer().fit(texts, labels)
    wrong = [labels[(i + 7) % len(labels)] for i in range(len(labels))]
    p.partial_fit(texts, wrong, epochs=3)
    assert not p.report_.accepted
    p.partial_fit(texts, labels, epochs=2, accept="always")
    reference.partial_fit(texts, labels, epochs=2, accept="always")
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(value, reference.head_parameters()[name])


def test_accept_always_replaces_the_head_whatever_the_validation_says(make_personalizer, user):
    p = make_personalizer().fit(*user)
    p.fit(*user, epochs=1, lr=1e-5, accept="always")
    assert p.report_.accepted and 'accept="always"' in p.report_.reason
    assert p.current_version == 2


def test_without_a_validation_split_the_guard_compares_on_the_training_data(make_personalizer, user):
    p = make_personalizer().fit(*user, validation_fraction=0.0)
    assert p.report_.validation_examples == 0 and "training data" in p.report_.reason


def test_rollback_returns_to_an_earlier_version_and_version_0_is_the_shipped_head(make_personalizer, user):
    p = make_personalizer()
    shipped = p.head_parameters()
    p.fit(*user)
    v1 = p.head_parameters()
    p.fit(*user, epochs=5, accept="always")
    assert p.current_version == 2
    p.rollback(1)
    assert p.current_version == 1
    for name in v1:
        np.testing.assert_array_equal(p.head_parameters()[name], v1[name])
    p.rollback(0)
    for name in shipped:
        np.testing.assert_array_equal(p.head_parameters()[name], shipped[name])
    p.fit(*user, accept="always")
    assert p.current_version == 3 and [v["version"] for v in p.versions] == [0, 1, 2, 3]


def test_rollback_to_an_unknown_version_raises(make_personalizer):
    with pytest.raises(StateError, match=r"no head version 4; the versions are 0"):
        make_personalizer().rollback(4)


def test_versions_and_the_current_one_survive_save_and_load(make_personalizer, user, tmp_path):
    from device_runtime import Personalizer

    p = make_personalizer().fit(*user)
    p.fit(*user, epochs=5, accept="always")
    p.rollback(1)
    p.save(tmp_path / "state")
    q = Personalizer.load(tmp_path / "state")
    assert q.current_version == 1 and q.versions == p.versions
    q.rollback(2)
    p.rollback(2)
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(q.head_parameters()[name], value)


def _replay_rows(per_label: int, labels: int) -> np.ndarray:
    return np.repeat(np.arange(labels), per_label)


def test_one_replay_row_lost_is_chance_not_forgetting():
    from device_runtime.acceptance import check_replay

    targets = _replay_rows(16, 3)
    new = targets.copy()
    new[0] = 1  # label a: 16/16 -> 15/16, 6 points, over the 2-point margin
    check = check_replay(targets, targets.copy(), new, ["a", "b", "c"], margin=0.02, level=0.2)
    assert check.labels["a"]["new"] == pytest.approx(15 / 16) and check.labels["a"]["p"] == pytest.approx(0.5)
    assert check.forgotten() is None


def test_a_label_that_loses_many_rows_is_named_as_forgotten():
    from device_runtime.acceptance import check_replay

    targets = _replay_rows(16, 3)
    new = targets.copy()
    new[16:24] = 0  # label b: half its rows now predicted as a, none gained
    check = check_replay(targets, targets.copy(), new, ["a", "b", "c"], margin=0.02, level=0.2)
    assert not check.labels["b"]["kept"] and check.labels["b"]["lost"] == 8
    assert check.labels["a"]["kept"] and check.labels["c"]["kept"]
    assert "b 1.00 -> 0.50 (8 rows lost, 0 gained" in check.forgotten()


def test_small_losses_spread_over_labels_are_caught_all_together():
    from device_runtime.acceptance import check_replay

    targets = _replay_rows(4, 4)
    new = targets.copy()
    new[[4, 8, 12]] = 0  # one row of each of b, c, d: chance for each label, not for the set
    check = check_replay(targets, targets.copy(), new, ["a", "b", "c", "d"], margin=0.02, level=0.2)
    assert all(v["kept"] for v in check.labels.values()) and not check.overall["kept"]
    assert "down in b, c, d" in check.forgotten()


def test_forgetting_level_1_refuses_every_loss_over_the_margin():
    from device_runtime.acceptance import check_replay

    targets = _replay_rows(16, 2)
    new = targets.copy()
    new[0] = 1
    assert "a 1.00 -> 0.94" in check_replay(targets, targets.copy(), new, ["a", "b"], margin=0.02, level=1.0).forgotten()
