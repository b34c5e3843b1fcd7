"""The windowed drift test: its level on data with a known answer, the window, alerts and persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device_runtime import Personalizer
from device_runtime.monitor import DriftMonitor
from device_runtime.two_sample import mmd_permutation_test
from edgeft.bundle import Bundle, write_manifest
from edgeft.cli import DRIFT_EXIT_CODE, main
from edgeft.config import DriftConfig, RuntimeConfig
from edgeft.errors import ConfigError
from edgeft.layout import REFERENCE_SAMPLE
from tests.device_runtime.test_drift import CHAT

SMALL_WINDOW = DriftConfig(window=40, min_window=30, check_every=10)


def test_the_test_rejects_samples_of_one_distribution_at_its_level_and_no_more():
    rng = np.random.default_rng(0)
    trials, level = 400, 0.1
    rejected = sum(
        mmd_permutation_test(rng.normal(size=(20, 3)), rng.normal(size=(30, 3)), level=level, permutations=99, seed=i).rejected
        for i in range(trials)
    )
    # Binomial(400, 0.1): mean 40, sd 6. A level that is not kept (or a test that never rejects) falls outside.
    assert 20 <= rejected <= 52, rejected


def test_the_test_finds_a_shift_of_one_standard_deviation_in_one_dimension():
    rng = np.random.default_rng(1)
    shifted = rng.normal(size=(40, 5)) + np.eye(5)[0]
    result = mmd_permutation_test(shifted, rng.normal(size=(100, 5)), level=0.01, permutations=199)
    assert result.rejected and result.p_value == pytest.approx(1 / 200)


def test_the_window_keeps_the_newest_predictions_and_drops_those_past_its_age():
    monitor = DriftMonitor(DriftConfig(window=5, min_window=2, window_seconds=60))
    monitor.observe(np.arange(6, dtype=np.float32)[:, None], np.full(6, 0.5), now=1000.0)
    monitor.observe(np.array([[10.0], [11.0]]), np.array([0.9, 0.8]), now=1100.0)
    features, confidence, _ = monitor.window(now=1101.0)
    assert features[:, 0].tolist() == [10.0, 11.0] and confidence.tolist() == pytest.approx([0.9, 0.8])
    assert monitor.window(now=1050.0)[0][:, 0].tolist() == [3.0, 4.0, 5.0, 10.0, 11.0]
    assert monitor.observed == 8


def test_the_monitor_round_trips_through_its_record_and_a_smaller_window_keeps_the_newest():
    monitor = DriftMonitor(DriftConfig(window=10, min_window=2))
    monitor.observe(np.random.default_rng(2).normal(size=(8, 3)), np.linspace(0.1, 0.8, 8), now=5.0)
    monitor.record_check(True)
    restored = DriftMonitor.from_dict(monitor.to_dict(), DriftConfig(window=3, min_window=2))
    np.testing.assert_array_equal(restored.window()[0], monitor.window()[0][-3:])
    assert (restored.alarm, restored.observed, restored.since_check) == (True, 8, 0)


def test_drift_config_refuses_a_level_outside_0_1_and_a_min_window_above_the_window():
    with pytest.raises(ConfigError, match="level must be in"):
        DriftConfig(level=1.5)
    with pytest.raises(ConfigError, match="min_window"):
        DriftConfig(window=10, min_window=20)


def _personalizer(bundle, cache_dir, drift=SMALL_WINDOW, **kwargs) -> Personalizer:
    return Personalizer.from_bundle(bundle, runtime=RuntimeConfig(cache_dir=str(cache_dir)), drift=drift, **kwargs)


def test_a_shift_after_much_normal_use_is_diluted_in_the_cumulative_mean_but_found_by_the_window(
    minilm_bundle, feature_cache_dir, user, test_split
):
    p = _personalizer(minilm_bundle, feature_cache_dir, drift=DriftConfig(window=40, min_window=30, check_every=0))
    p.predict(user[0] + test_split[0])  # 210 texts like the export data
    p.predict(CHAT)  # then 40 of another kind
    report = p.drift_report()
    assert report["feature_shift"] < 0.5, "the cumulative score alone misses it"
    assert report["drifted"] and report["decided_by"] == "mmd_test", report["reason"]
    assert report["test"]["p_value"] <= report["test"]["level"] == 0.01
    assert report["window"]["examples"] == 40 and report["window"]["feature_shift"] > report["feature_shift"]
    assert report["reason"].startswith("The last 40 predictions differ from the export data (MMD permutation test")


def test_on_drift_is_called_once_when_drift_starts_and_not_again_while_it_lasts(minilm_bundle, feature_cache_dir, test_split):
    alerts = []
    p = _personalizer(minilm_bundle, feature_cache_dir, on_drift=alerts.append)
    mixed = test_split[0][::3]  # every topic, as at export (the split is sorted by topic)
    for start in range(0, 40, 10):
        p.predict(mixed[start : start + 10])
    assert alerts == []
    for start in range(0, 40, 10):
        p.predict(CHAT[start : start + 10])
    p.predict(CHAT[:10])
    assert len(alerts) == 1 and alerts[0]["drifted"] and alerts[0]["window"]["examples"] == 40


def test_the_window_is_kept_across_rollback_save_and_load(minilm_bundle, feature_cache_dir, user, tmp_path):
    p = _personalizer(minilm_bundle, feature_cache_dir)
    p.fit(*user, epochs=5)
    p.predict(CHAT)
    before = p.drift_report()
    p.rollback(0).save(tmp_path / "state")
    restored = Personalizer.load(tmp_path / "state", drift=SMALL_WINDOW)
    after = restored.drift_report()
    assert after["window"] == before["window"] and after["test"]["p_value"] == before["test"]["p_value"]
    np.testing.assert_array_equal(restored.monitor_.window()[0], p.monitor_.window()[0])


def test_a_bundle_without_a_reference_sample_keeps_the_cumulative_report_and_says_why(bundle_copy, feature_cache_dir):
    (bundle_copy / REFERENCE_SAMPLE).unlink()
    write_manifest(bundle_copy, Bundle.load(bundle_copy, verify=False).manifest)
    p = _personalizer(bundle_copy, feature_cache_dir)
    p.predict(CHAT)
    report = p.drift_report()
    assert report["decided_by"] == "feature_shift_threshold" and report["drifted"] and not report["test"]["available"]
    assert "no reference_sample.npz" in report["test"]["reason"] and "windowed test is unavailable" in report["reason"]


def test_edgeft_drift_exits_with_3_when_the_window_drifted_so_scripts_can_act(minilm_bundle, tmp_path, capsys):
    data = tmp_path / "chat.csv"
    data.write_text("text\n" + "\n".join(CHAT) + "\n")
    assert main(["drift", str(minilm_bundle), "--data", str(data), "--window", "40"]) == DRIFT_EXIT_CODE == 3
    report = json.loads(capsys.readouterr().out)
    assert report["drifted"] and report["test"]["method"] == "mmd_permutation" and report["window"]["capacity"] == 40
