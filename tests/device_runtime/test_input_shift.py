"""The guard tells a shifted user from forgetting, on real sensor data (BasicMotions, 4 activities).

Where the user's inputs differ from the server's (the watch turned on the wrist), the guard rows of the labels
the user gave stop judging: the user's own validation rows decide those, the guard rows still decide every
label the user gave no examples of. A user whose inputs look like the server's keeps the full guard, and so does
one who swaps labels: that is not an input shift.
"""

from __future__ import annotations

import numpy as np
import pytest

from device_runtime import Personalizer
from device_runtime.input_shift import check_shift
from device_runtime.two_sample import mmd_permutation_test

SWAP_XY = [1, 0, 2, 4, 3, 5]  # accelerometer x<->y, gyroscope x<->y: the watch turned a quarter on the wrist


@pytest.fixture(scope="module")
def personalizer(sensor_bundle):
    return Personalizer.from_bundle(sensor_bundle)


@pytest.fixture(scope="module")
def user(basic_motions):
    """5 of the user's series per activity (unshifted) and their label indices; the rest to test on."""
    X, labels = basic_motions["user"]
    labels = np.array(labels)
    own = np.concatenate([np.flatnonzero(labels == label)[:5] for label in sorted(set(labels))])
    rest = np.setdiff1d(np.arange(len(labels)), own)
    return X[own], labels[own], X[rest], labels[rest]


def _targets(p: Personalizer, labels) -> np.ndarray:
    return np.array([p.labels.index(label) for label in labels])


def test_the_stratified_test_does_not_take_other_label_proportions_for_a_shift():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [4.0, 0.0]])  # two labels, far apart
    x_labels, y_labels = np.repeat([0, 1], [18, 2]), np.repeat([0, 1], [5, 15])  # the same labels, other proportions
    x = means[x_labels] + rng.normal(size=(20, 2))
    y = means[y_labels] + rng.normal(size=(20, 2))
    assert mmd_permutation_test(x, y, permutations=199).rejected, "unstratified, the proportions alone differ"
    stratified = mmd_permutation_test(x, y, permutations=199, strata=np.concatenate([x_labels, y_labels]))
    assert not stratified.rejected and stratified.p_value > 0.1


def test_the_stratified_test_keeps_its_level():
    rng = np.random.default_rng(1)
    strata = np.concatenate([np.repeat([0, 1, 2], 6), np.repeat([0, 1, 2], 3)])
    rejected = sum(
        mmd_permutation_test(
            rng.normal(size=(18, 3)) + strata[:18, None],
            rng.normal(size=(9, 3)) + strata[18:, None],
            level=0.1,
            permutations=99,
            seed=i,
            strata=strata,
        ).rejected
        for i in range(300)
    )
    # Binomial(300, 0.1): mean 30, sd 5.2.
    assert 14 <= rejected <= 42, rejected


def test_a_turned_watch_is_an_input_shift_and_the_same_watch_is_not(personalizer, user):
    X, labels, _, _ = user
    targets = _targets(personalizer, labels)
    same = check_shift(personalizer.transform(X), targets, personalizer.guard, personalizer.labels, seed=0)
    turned = check_shift(personalizer.transform(X[:, SWAP_XY]), targets, personalizer.guard, personalizer.labels, seed=0)
    assert same.tested and not same.shifted and same.set_aside == 0
    assert turned.shifted and turned.p_value <= turned.level
    assert turned.set_aside == len(personalizer.guard), "the user gave every label: each guard row is set aside"


def test_labels_swapped_among_the_users_own_are_not_an_input_shift(personalizer, user):
    X, labels, _, _ = user
    moved = (_targets(personalizer, labels) + 1) % len(personalizer.labels)
    check = check_shift(personalizer.transform(X), moved, personalizer.guard, personalizer.labels, seed=0)
    assert not check.shifted, check.shown()


def test_fit_on_a_turned_watch_ships_the_head_the_users_rows_choose(sensor_bundle, user):
    X, labels, X_test, y_test = user
    p = Personalizer.from_bundle(sensor_bundle)
    shipped = p.score(X_test[:, SWAP_XY], list(y_test))
    p.fit(X[:, SWAP_XY], list(labels))
    report = p.report_
    assert report.accepted and report.mix_weight == 1.0, report.reason
    assert report.shift["shifted"] and report.guard_examples == 0 and report.labels_checked
    assert "differ from the server's" in report.validated_on
    assert p.score(X_test[:, SWAP_XY], list(y_test)) >= shipped + 0.3


def test_under_a_shift_the_guard_rows_still_judge_the_labels_the_user_gave_none_of(sensor_bundle, user):
    X, labels, _, _ = user
    given, left_out = sorted(set(labels))[:3], sorted(set(labels))[3:]
    mine = np.isin(labels, given)
    turned = X[mine][:, SWAP_XY] * np.array([1, -1, 1, 1, -1, 1])[:, None]  # a quarter turn: (x, y) -> (y, -x)
    p = Personalizer.from_bundle(sensor_bundle)
    p.fit(turned, list(labels[mine]))
    assert p.report_.shift["shifted"] and p.report_.shift["labels"] == given, p.report_.shift
    assert p.report_.guard_examples == int(np.isin(p.guard.labels, _targets(p, left_out)).sum()) > 0
    judged = {v["label"] for v in p.report_.verdicts if v["source"] == "guard"}
    assert judged == set(left_out) | {"all"}


def test_the_cli_says_when_the_users_inputs_differ_from_the_servers(sensor_bundle, user, tmp_path, capsys):
    from edgeft.cli import main

    X, labels, _, _ = user
    np.savez(tmp_path / "turned.npz", X=X[:, SWAP_XY], y=labels)
    state = tmp_path / "state"
    assert main(["personalize", str(sensor_bundle), "--data", str(tmp_path / "turned.npz"), "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "input shift: the user's inputs differ from the server's" in out and "guard rows of them were set aside" in out
