"""The backbone runs once per example; features are reused across epochs and fits, and spill to disk."""

from __future__ import annotations

import numpy as np

from device_runtime.cache import FeatureCache


def test_the_backbone_runs_once_per_distinct_example_across_fits(make_personalizer, user, tmp_path):
    p = make_personalizer(cache_dir=None)
    texts, labels = user
    p.fit(texts + texts[:5], labels + labels[:5], epochs=3)  # duplicates are embedded once
    assert p.cache.misses == len(set(texts))
    p.fit(texts, labels, epochs=3)
    p.partial_fit(texts, labels, epochs=1)
    assert p.cache.misses == len(set(texts)) and len(p.cache) == len(set(texts))
    assert p.report_.feature_seconds < 0.1


def test_features_spill_to_disk_beyond_the_memory_budget_and_stay_exact(make_personalizer, user):
    roomy = make_personalizer(cache_dir=None)
    tight = make_personalizer(cache_dir=None, cache_memory_mb=0.01)  # room for about 6 MiniLM vectors
    expected = roomy.transform(user[0])
    features = tight.transform(user[0])
    assert isinstance(features, np.memmap)  # the matrix itself lives on disk past the budget
    np.testing.assert_array_equal(np.asarray(features), expected)
    assert len(tight.cache._memory) <= 7 and len(tight.cache._disk) >= len(user[0]) - 7
    tight.fit(*user, epochs=2)
    assert tight.cache.misses == len(set(user[0]))


def test_a_persistent_cache_is_reused_by_a_later_process(make_personalizer, user, tmp_path):
    first = make_personalizer(cache_dir=str(tmp_path))
    expected = first.transform(user[0])
    later = make_personalizer(cache_dir=str(tmp_path))
    np.testing.assert_array_equal(later.transform(user[0]), expected)
    assert later.cache.misses == 0


def test_entries_are_keyed_by_backbone_and_content(tmp_path):
    vector = np.ones((1, 4), np.float32)
    one = FeatureCache("backbone-a", 4, 1 << 20, tmp_path)
    one.put([FeatureCache.key_of("hello")], vector)
    assert FeatureCache("backbone-a", 4, 1 << 20, tmp_path).get(FeatureCache.key_of("hello")) is not None
    assert FeatureCache("backbone-b", 4, 1 << 20, tmp_path).get(FeatureCache.key_of("hello")) is None
    assert one.get(FeatureCache.key_of("hello!")) is None


def test_a_record_torn_by_a_crash_is_dropped_and_later_appends_stay_aligned(tmp_path):
    cache = FeatureCache("b", 4, 0, tmp_path)
    cache.put(["a" * 32, "b" * 32], np.arange(8, dtype=np.float32).reshape(2, 4))
    file = next(tmp_path.iterdir())
    with open(file, "ab") as f:
        f.write(b"\x01" * 20)  # half a record, as a kill mid-write leaves it
    reopened = FeatureCache("b", 4, 0, tmp_path)
    reopened.put(["c" * 32], np.full((1, 4), 9, np.float32))
    again = FeatureCache("b", 4, 0, tmp_path)
    np.testing.assert_array_equal(again.get("b" * 32), [4, 5, 6, 7])
    np.testing.assert_array_equal(again.get("c" * 32), [9, 9, 9, 9])
