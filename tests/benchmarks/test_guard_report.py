"""The guard benchmark judges each run against held-out truth as the issue states it."""

from __future__ import annotations

from benchmarks.quality.guard import clear, flipped, verdict_error


def _run(accepted: bool, shipped: float, chosen: float, raw: float) -> dict:
    return {"accepted": accepted, "shipped": shipped, "chosen": chosen, "raw": raw}


def test_refusing_a_head_two_points_better_is_an_error():
    assert verdict_error(_run(False, 0.80, 0.80, 0.82)) == "refused a better head"
    assert verdict_error(_run(False, 0.80, 0.80, 0.815)) is None


def test_shipping_a_head_one_point_worse_is_an_error():
    assert verdict_error(_run(True, 0.80, 0.79, 0.79)) == "shipped a worse head"
    assert verdict_error(_run(True, 0.80, 0.795, 0.70)) is None


def test_the_truth_is_clear_only_beyond_the_issues_margins():
    assert clear(_run(True, 0.80, 0.83, 0.83)) and clear(_run(False, 0.80, 0.80, 0.78))
    assert not clear(_run(True, 0.80, 0.805, 0.81))


def test_flipping_moves_a_share_of_the_labels_one_label_on():
    y = ["a", "b", "c"] * 10
    moved = flipped(y, ["a", "b", "c"], 1.0, seed=0)
    assert moved == ["b", "c", "a"] * 10
    assert sum(u != v for u, v in zip(y, flipped(y, ["a", "b", "c"], 0.2, seed=0))) == 6
