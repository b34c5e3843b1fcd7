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
    assert "is better" in r.reason and "validation rows" in r.reason
    assert p.versions[1]["metrics"]["loss"] == pytest.approx(r.new["loss"])


def test_a_worse_head_is_rejected_and_the_current_one_kept(make_personalizer, user):
    p = make_personalizer().fit(*user)
    good = p.head_parameters()
    p.fit(*user, epochs=1, lr=1e-5)  # barely moves from the shipped head, which is worse than version 1
    r = p.report_
    assert not r.accepted and "not better" in r.reason and r.new["loss"] > r.current["loss"]
    assert p.current_version == 1 and len(p.versions) == 2
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(value, good[name])


def test_a_rejected_partial_fit_restores_the_head_and_its_optimizer_state(make_personalizer, user):
    texts, labels = user
    p = make_personalizer().fit(texts, labels)
    reference = make_personalizer().fit(texts, labels)
    p.partial_fit(texts, labels, epochs=3, lr=1e15)  # diverges: never accepted
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


def test_without_a_validation_split_the_guard_compares_on_the_training_rows(make_personalizer, user):
    p = make_personalizer().fit(*user, validation_fraction=0.0)
    assert p.report_.validation_examples == 0 and "training rows" in p.report_.reason


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
