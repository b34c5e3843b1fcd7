"""benchmarks/fleet/federated.py's table: one row per configuration, the mean over its seeds with their spread."""

from __future__ import annotations

from pathlib import Path

from benchmarks.fleet.federated import plot, report


def _run(alpha: float, seed: int, federated: float, d: float) -> dict:
    return {
        "setting": {"devices": 100, "alpha": alpha, "sizes": [6, 26]},
        "seed": seed,
        "per_round_global_accuracy": [0.70, federated],
        "start": {"temperature": 2.0},
        "a": 0.55,
        "b": 0.78,
        "c": 0.73,
        "d": d,
        "e": 0.74,
        "global_shipped": 0.56,
        "global_federated": federated,
        "global_central": 0.71,
        "devices_d_below_a": 1,
        "devices_c_below_a": 6,
        "devices_e_below_a": 10,
        "kept": {"global": 10, "personal": 90},
    }


RESULTS = {
    "dataset": "rotten",
    "fleet": {
        "start": "gaussian",
        "shrinkage": 0.3,
        "aggregation": "fedavg",
        "local_epochs": 5,
        "local_schedule": "constant",
        "local_lr": None,
    },
    "rounds": 1,
    "runs": [_run(0.3, 0, 0.72, 0.83), _run(0.3, 1, 0.70, 0.81), _run(1.0, 0, 0.71, 0.80)],
}


def test_the_table_has_one_row_per_configuration_with_the_seeds_spread() -> None:
    table = report(RESULTS)
    assert (
        "| 100 devices, alpha 0.3 | 2 | 0.780 | 0.730 | 0.820 | 0.700 / 0.710 / 0.710 | +0.0 (-1.0..+1.0) | +4.0 (+3.0..+5.0) |"
        in table
    )
    assert "| 2 / 12 / 20 of 200 | 20 / 0 / 180 / 0 |" in table
    assert "| 100 devices, alpha 1 | 1 | 0.780 | 0.730 | 0.800 | 0.700 / 0.710 / 0.710 | +0.0 | +2.0 |" in table


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    plot(RESULTS, tmp_path / "fleet.png")
    assert (tmp_path / "fleet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
