"""``python -m benchmarks.fleet``: federated heads over 100 simulated BBC News devices, against the alternatives.

For each Dirichlet alpha: a Flower FedAvg run (the devices train on the numpy engine, the ORT
engine's parity twin, so 100 devices stay cheap), then the mean accuracy on the devices' own
held-out splits of (a) the shipped head, (b) each device alone, (c) the federated head,
(d) federated then locally personalized (partial_fit, guarded), (e) one head trained centrally on
all devices' data; the global held-out accuracy per round; bytes per device per round; seconds per round.
Backbone features are computed once into a persistent feature cache shared by every device.
Writes ``results.md``, ``results.json`` and ``fleet.png`` into ``--out`` (default docs/fleet).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from device_runtime import Personalizer
from edgeft.config import ExportConfig, RuntimeConfig
from edgeft.datasets import bbc_news, minilm_path, split_per_class
from fleet import FleetConfig, dirichlet_devices, simulate

MODES = {"quick": {"devices": 100, "rounds": 8, "sizes": (6, 26), "held_out": 300},
         "smoke": {"devices": 10, "rounds": 2, "sizes": (6, 12), "held_out": 40}}


def prepare(work: Path) -> tuple[Path, list[str], list[str], tuple[list[str], list[str]]]:
    """A MiniLM bundle shipped with a head trained on 4 articles per topic; the rest for devices and a held-out set."""
    from export import export_text_model

    texts, labels = bbc_news()
    server = split_per_class(texts, labels, [4], seed=0)[0]
    shipped_on = set(server[0])
    rest = ([t for t in texts if t not in shipped_on], [lbl for t, lbl in zip(texts, labels) if t not in shipped_on])
    bundle = work / "minilm-bbc"
    if not (bundle / "manifest.json").is_file():
        export_text_model(minilm_path(), bundle, texts=server[0], labels=server[1],
                          # int8-dynamic by name, as its figures were measured: 20 server texts are too few for auto.
                          config=ExportConfig(name="minilm-bbc", license="apache-2.0", quantization="int8-dynamic"))
    return bundle, rest[0], rest[1], server


def compare(bundle: Path, runtime: RuntimeConfig, devices: list, head: dict, held_out: tuple) -> dict:
    """(a)-(e) on every device's own held-out split, and shipped / federated / central on the global held-out set."""
    p = Personalizer.from_bundle(bundle, runtime=runtime)
    pooled_X = [x for d in devices for x in d.X]
    pooled_y = [y for d in devices for y in d.y]
    p.fit(pooled_X, pooled_y, accept="always")
    central = p.head_parameters()
    rows = {k: [] for k in "abcde"}
    for d in devices:
        X, y, Xt, yt = list(d.X), list(d.y), list(d.X_test), list(d.y_test)
        p.rollback(0)
        rows["a"].append(p.score(Xt, yt))
        p.fit(X, y)  # from the shipped head, guarded against it
        rows["b"].append(p.score(Xt, yt))
        p.set_head(head, source="federated")
        rows["c"].append(p.score(Xt, yt))
        p.partial_fit(X, y)  # the FedPer way: the fleet's head, then the device's own data, guarded
        rows["d"].append(p.score(Xt, yt))
        p.set_head(central, source="central")
        rows["e"].append(p.score(Xt, yt))
    a, d = np.array(rows["a"]), np.array(rows["d"])
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    out["devices_d_worse_than_a"] = int((d < a - 1e-9).sum())
    out["devices_b_worse_than_a"] = int((np.array(rows["b"]) < a - 1e-9).sum())
    for name, params in (("shipped", None), ("federated", head), ("central", central)):
        p.rollback(0) if params is None else p.set_head(params, source=name)
        out[f"global_{name}"] = p.score(list(held_out[0]), list(held_out[1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick", help="how much work (default: %(default)s)")
    parser.add_argument("--alphas", default="0.3,10", help="Dirichlet alphas, comma-separated (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/results/fleet-work"), help="bundle and feature cache (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("docs/fleet"), help="results folder (default: %(default)s)")
    args = parser.parse_args()
    mode = MODES[args.mode]
    args.work.mkdir(parents=True, exist_ok=True)
    bundle, X, y, _ = prepare(args.work)
    runtime = RuntimeConfig(engine="numpy", cache_dir=str(args.work / "features"))
    rng = np.random.default_rng(0)
    held = rng.permutation(len(X))[: mode["held_out"]]
    held_out = ([X[i] for i in held], [y[i] for i in held])
    held_set = set(held.tolist())
    pool = [i for i in range(len(X)) if i not in held_set]
    pool_X, pool_y = [X[i] for i in pool], [y[i] for i in pool]
    t = time.monotonic()
    Personalizer.from_bundle(bundle, runtime=runtime).transform(pool_X + held_out[0])  # every feature once, into the cache
    feature_seconds = time.monotonic() - t
    results = {"mode": args.mode, "feature_seconds": feature_seconds, "runs": {}}
    for alpha in (float(a) for a in args.alphas.split(",")):
        devices = dirichlet_devices(pool_X, pool_y, mode["devices"], alpha, sizes=mode["sizes"], seed=0)
        config = FleetConfig(rounds=mode["rounds"], min_available_clients=mode["devices"], min_train_clients=mode["devices"],
                             min_evaluate_clients=mode["devices"])
        run = simulate(bundle, devices, config, eval_data=held_out, runtime=runtime)
        rounds = run.rounds
        results["runs"][str(alpha)] = {
            "per_round_global_accuracy": [r["central"]["accuracy"] for r in rounds],
            "seconds_per_round": [r["seconds"] for r in rounds[1:]],
            "bytes_sent_per_device_round": rounds[-1]["train"]["bytes-sent"],
            "bytes_received_per_device_round": rounds[-1]["train"]["bytes-received"],
            "examples": sum(len(d.X) + len(d.X_test) for d in devices),
            **compare(bundle, runtime, devices, run.head, held_out),
        }
        print(json.dumps(results["runs"][str(alpha)], indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(report(results, mode))
    plot(results, args.out / "fleet.png")
    print(report(results, mode))


def report(results: dict, mode: dict) -> str:
    lines = [(f"{mode['devices']} devices, {mode['rounds']} rounds of FedAvg, {mode['held_out']} global held-out articles; "
             f"features once: {results['feature_seconds']:.0f} s"), "",
             ("| alpha | (a) shipped | (b) alone | (c) federated | (d) fed + local | (e) central | global: shipped / fed / central "
             "| devices (d) < (a) | bytes sent / received per device-round | s per round |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for alpha, r in results["runs"].items():
        lines.append(
            f"| {alpha} | {r['a']:.3f} | {r['b']:.3f} | {r['c']:.3f} | {r['d']:.3f} | {r['e']:.3f} | "
            f"{r['global_shipped']:.3f} / {r['global_federated']:.3f} / {r['global_central']:.3f} | "
            f"{r['devices_d_worse_than_a']} of {mode['devices']} | {r['bytes_sent_per_device_round']:.0f} / "
            f"{r['bytes_received_per_device_round']:.0f} | {np.mean(r['seconds_per_round']):.1f} |")
    lines += ["", "Global held-out accuracy per round (round 0 is the shipped head):", ""]
    for alpha, r in results["runs"].items():
        lines.append(f"- alpha {alpha}: " + ", ".join(f"{a:.3f}" for a in r["per_round_global_accuracy"]))
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for alpha, r in results["runs"].items():
        left.plot(r["per_round_global_accuracy"], marker="o", label=f"alpha {alpha}")
        right.bar([f"{k}\n{alpha}" for k in "abcde"], [r[k] for k in "abcde"], alpha=0.8, label=f"alpha {alpha}")
    left.set(xlabel="round", ylabel="global held-out accuracy", title="federated head per round")
    right.set(ylabel="mean accuracy on devices' own splits",
              title="(a) shipped (b) alone (c) federated (d) fed+local (e) central")
    left.legend()
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
