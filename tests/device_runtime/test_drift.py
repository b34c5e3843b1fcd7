"""drift_report compares running statistics of local data with the reference the exporter recorded."""

from __future__ import annotations

import json

import numpy as np

from device_runtime.drift import RunningStats
from edgeft.layout import REFERENCE

CHAT = [
    f"{who} said {what} {when}"
    for who in ("mum", "Sam", "the landlord", "my coach", "Alex")
    for what in ("the pasta needs more salt", "the gym opens at six", "my cat ate the plant", "the bus is late again")
    for when in ("today", "last night")
]


def test_the_bundle_ships_a_reference_from_its_server_data(minilm_bundle):
    reference = json.loads((minilm_bundle / REFERENCE).read_text())
    assert reference["count"] == 20 and len(reference["feature_mean"]) == 384
    assert 0 < reference["confidence_mean"] <= 1


def test_data_like_the_export_data_is_not_drift(make_personalizer, user, test_split):
    p = make_personalizer()
    p.fit(*user)
    p.predict(test_split[0])
    report = p.drift_report()
    assert not report["drifted"] and report["examples_seen"] == len(user[0]) + len(test_split[0])
    assert report["decided_by"] == "mmd_test" and "consistent with the export data" in report["reason"]


def test_other_kinds_of_text_are_drift_and_the_threshold_is_settable(make_personalizer):
    p = make_personalizer()
    p.predict(CHAT)
    report = p.drift_report()
    assert report["drifted"] and report["feature_shift"] > 0.5, report
    assert report["over_threshold"] and not p.drift_report(threshold=report["feature_shift"] + 1)["over_threshold"]


def test_running_statistics_merge_batches_exactly():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(100, 3))
    stats = RunningStats()
    for chunk in np.array_split(data, 7):
        stats.update_features(chunk)
    np.testing.assert_allclose(stats.feature_mean, data.mean(axis=0))
    np.testing.assert_allclose(stats.to_dict()["feature_std"], data.std(axis=0))
    assert RunningStats.from_dict(stats.to_dict()).to_dict() == stats.to_dict()
