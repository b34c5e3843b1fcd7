"""The forgetting benchmark's targets are computed from its runs as the issue states them.

The runs themselves (bundles, features, fits) are the benchmark's; here the
arithmetic on their rows is checked, on rows whose answers are known.
"""

from __future__ import annotations

import pytest

from benchmarks.quality.forgetting import VARIANTS, cells, gain_share, markdown, targets


def _row(variant: str, seed: int, after_all: float, after_user: float, accepted: bool = True) -> dict:
    return {
        "labels": 2,
        "shots": 4,
        "seed": seed,
        "variant": variant,
        "user_labels": ["a", "b"],
        "accepted": accepted,
        "before_all": 0.80,
        "before_user": 0.70,
        "after_all": after_all,
        "after_user": after_user,
    }


ROWS = [
    _row("defaults", 0, 0.81, 0.85),
    _row("defaults", 1, 0.785, 0.70, accepted=False),
    _row("counting guard", 0, 0.81, 0.85),
    _row("counting guard", 1, 0.79, 0.80),
    _row("replay, unguarded", 0, 0.81, 0.85),
    _row("replay, unguarded", 1, 0.78, 0.80),
    _row("user data alone", 0, 0.50, 0.90),
    _row("user data alone", 1, 0.40, 0.90),
    _row("L2-SP", 0, 0.60, 0.80),
    _row("L2-SP", 1, 0.60, 0.80),
]


def test_the_user_label_gain_is_a_share_of_what_training_without_replay_gains():
    # defaults gained 0.15 + 0.00 where the user's data alone gained 0.20 + 0.20 (0.375 shows as 37%)
    assert gain_share(ROWS, "defaults") == pytest.approx(0.15 / 0.40)
    assert gain_share(ROWS, "replay, unguarded") == pytest.approx(0.25 / 0.40)


def test_the_all_label_target_is_judged_on_the_worst_run():
    t = targets(ROWS)
    assert t["worst_all_change"] == pytest.approx(-0.015) and not t["all_within_1_point"]
    assert t["refused"] == 1 and t["runs"] == 2 and not t["user_gain_share_met"]


def test_cells_average_seeds_per_way_of_training_in_the_documented_order():
    table = cells(ROWS)
    assert [c["variant"] for c in table] == list(VARIANTS)
    defaults = table[0]
    assert defaults["after_all"] == pytest.approx((0.81 + 0.785) / 2) and defaults["accepted"] == 1
    assert defaults["worst_all_change"] == pytest.approx(-0.015)


def test_the_report_says_which_target_was_missed():
    results = {
        "mode": "test",
        "machine": "m",
        "date": "d",
        "seconds": 1.0,
        "data_sets": {
            "toy": {
                "labels": ["a", "b", "c"],
                "server_per_class": 16,
                "replay_examples": 48,
                "cells": cells(ROWS),
                "targets": targets(ROWS),
            }
        },
    }
    report = markdown(results)
    assert (
        "-1.5 points (MISSED: never below -1)" in report
        and "Counting guard (forgetting_level 0.2): worst -1.0 points" in report
        and "kept 37% of training without replay's (MISSED" in report
    )
