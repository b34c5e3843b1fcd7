"""The text-blocks benchmark's table and targets are computed from its runs as the issue states them.

The runs themselves (bundles, device processes) are the benchmark's; here the
arithmetic on their rows is checked, on rows whose answers are known.
"""

from __future__ import annotations

import pytest

from benchmarks.quality.text_blocks import VARIANTS, cells, markdown, targets, user_examples


def _row(variant: str, seed: int, accuracy: float, peak: float, shots: int = 128) -> dict:
    return {
        "shots": shots,
        "seed": seed,
        "variant": variant,
        "accuracy": accuracy,
        "epochs": 10,
        "seconds_per_epoch": 0.01 * (seed + 1),
        "feature_seconds": 1.0,
        "peak_rss_mb": peak,
    }


ROWS = [
    _row("head only", 0, 0.70, 200),
    _row("head only", 1, 0.72, 210),
    _row("last block", 0, 0.73, 300),
    _row("last block", 1, 0.75, 320),
    _row("last 2 blocks", 0, 0.76, 450),
    _row("last 2 blocks", 1, 0.78, 430),
    _row("LoRA r8, last 2", 0, 0.74, 380),
    _row("LoRA r8, last 2", 1, 0.74, 390),
]


def test_cells_average_seeds_and_keep_the_worst_peak_memory():
    table = cells(ROWS)
    assert [c["variant"] for c in table] == list(VARIANTS)
    head = table[0]
    assert head["accuracy"] == pytest.approx(0.71) and head["accuracy_sd"] == pytest.approx(0.01)
    assert head["peak_rss_mb"] == 210 and head["runs"] == 2


def test_the_target_compares_the_best_trainable_way_with_the_head_alone():
    t = targets(cells(ROWS))
    assert t["best"] == "last 2 blocks" and t["gain_points"] == pytest.approx(6.0)
    assert t["gain_met"] and t["memory_ratio"] == pytest.approx(450 / 210) and not t["memory_met"]


def test_the_report_says_which_target_was_missed():
    table = cells(ROWS)
    results = {
        "mode": "test",
        "machine": "m",
        "date": "d",
        "seconds": 1.0,
        "config": {"epochs": None},
        "data_sets": {
            "toy": {
                "labels": 2,
                "max_length": 64,
                "server_per_class": 50,
                "test_examples": 400,
                "cells": table,
                "targets": targets(table),
                "bundle_mb": dict.fromkeys(VARIANTS, 25.0),
            }
        },
    }
    report = markdown(results)
    assert (
        "(last 2 blocks) is +6.0 points against the head alone (met: at least +4), at 2.14x its peak memory (MISSED: under 2x)"
        in report
    )


def test_seeds_draw_disjoint_examples_and_fewer_shots_are_a_prefix():
    pool = ([f"t{i}" for i in range(12)], ["a", "b"] * 6)
    first, second = user_examples(pool, 2, 0, per_seed=3), user_examples(pool, 2, 1, per_seed=3)
    assert not set(first[0]) & set(second[0])
    assert set(user_examples(pool, 1, 0, per_seed=3)[0]) < set(first[0]) and first[1] == ["a", "a", "b", "b"]
