"""``python -m benchmarks.fleet``: federated heads over simulated devices, against the alternatives.

Two data sets: BBC News on the MiniLM bundle (100 devices) and, smaller, Fashion-MNIST on the
EfficientNet-Lite0 bundle (``--dataset fashion``, 50 devices). For each Dirichlet alpha: a Flower
FedAvg run (the devices train on the numpy engine, the ORT engine's parity twin, so 100 devices stay
cheap), then the mean accuracy on the devices' own held-out splits of (a) the shipped head, (b) each
device alone, (c) the federated head, (d) federated then locally personalized (partial_fit, guarded),
(e) one head trained centrally on all devices' data; the global held-out accuracy per round; bytes per
device per round; seconds per round. Backbone features are computed once into a persistent feature
cache shared by every device. Writes ``results.md``, ``results.json`` and ``fleet.png`` into ``--out``
(default docs/fleet for BBC, docs/fleet/fashion for Fashion-MNIST).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime import Personalizer
from edgeft import atomic
from edgeft.config import ExportConfig, RuntimeConfig
from edgeft.datasets import bbc_news, minilm_path, split_per_class
from fleet import FleetConfig, dirichlet_devices, simulate

MODES = {
    "bbc": {
        "quick": {"devices": 100, "rounds": 8, "sizes": (6, 26), "held_out": 300},
        "smoke": {"devices": 10, "rounds": 2, "sizes": (6, 12), "held_out": 40},
    },
    # EfficientNet-Lite0 embeds about 20 images a second here (MiniLM: about 8 articles): half the devices.
    "fashion": {
        "quick": {"devices": 50, "rounds": 16, "sizes": (6, 26), "held_out": 300},
        "smoke": {"devices": 10, "rounds": 2, "sizes": (6, 12), "held_out": 40},
    },
}
UNIT = {"bbc": "articles", "fashion": "images"}
SHIPPED_PER_CLASS = 4  # the shipped head's server examples per class: a weak start that devices can improve on
Data = tuple[Sequence[Any], list[str]]


def prepare(work: Path, held_out: int) -> tuple[Path, Data, Data]:
    """A MiniLM bundle shipped with a head trained on 4 articles per topic; the other articles for devices and a held-out set."""
    from export import ServerData, export_bundle

    texts, labels = bbc_news()
    server = split_per_class(texts, labels, [SHIPPED_PER_CLASS], seed=0)[0]
    shipped_on = set(server[0])
    X = [t for t in texts if t not in shipped_on]
    y = [lbl for t, lbl in zip(texts, labels) if t not in shipped_on]
    bundle = work / "minilm-bbc"
    if not (bundle / "manifest.json").is_file():
        export_bundle(
            minilm_path(),
            bundle,
            data=ServerData(*server),
            # int8-dynamic by name, as its figures were measured: 20 server texts are too few for auto.
            config=ExportConfig(name="minilm-bbc", license="apache-2.0", quantization="int8-dynamic"),
        )
    held = np.random.default_rng(0).permutation(len(X))[:held_out]
    held_set = set(held.tolist())
    pool = [i for i in range(len(X)) if i not in held_set]
    return bundle, ([X[i] for i in pool], [y[i] for i in pool]), ([X[i] for i in held], [y[i] for i in held])


def prepare_fashion(work: Path, held_out: int, pool_per_class: int = 120) -> tuple[Path, Data, Data]:
    """An FP32 EfficientNet-Lite0 bundle shipped with a head trained on 4 training images per class.

    The devices draw from ``pool_per_class`` other training images per class (enough for 50 devices of up to
    26 images, however skewed their Dirichlet mixes); the global held-out set comes from the test images.
    FP32 as in benchmarks/vision.py: on x86 CPUs the INT8 conv graph runs slower.
    """

    from edgeft.config import Quantization
    from edgeft.datasets import fashion_mnist
    from export import ServerData, export_bundle
    from export.vision import VISION_MODELS

    images, labels = fashion_mnist("train")
    rng = np.random.default_rng(0)
    chosen = {
        c: rng.permutation([i for i, v in enumerate(labels) if v == c])[: SHIPPED_PER_CLASS + pool_per_class]
        for c in sorted(set(labels))
    }
    server = np.sort(np.concatenate([ids[:SHIPPED_PER_CLASS] for ids in chosen.values()]))
    pool = np.sort(np.concatenate([ids[SHIPPED_PER_CLASS:] for ids in chosen.values()]))
    bundle = work / "effnet-fashion"
    if not (bundle / "manifest.json").is_file():
        model = VISION_MODELS["efficientnet-lite0"]
        config = ExportConfig(name="effnet-fashion", quantization=Quantization.NONE, license=model.license)
        export_bundle(model.build(), bundle, data=ServerData(images[server], [labels[i] for i in server]), config=config)
    test_x, test_y = fashion_mnist("test", per_class=held_out // 10, seed=0)
    return bundle, (list(images[pool]), [labels[i] for i in pool]), (list(test_x), test_y)


PREPARE = {"bbc": prepare, "fashion": prepare_fashion}


def compare(bundle: Path, runtime: RuntimeConfig, devices: list, head: dict, held_out: tuple) -> dict:
    """(a)-(e) on every device's own held-out split, and shipped / federated / central on the global held-out set.

    Also, for each device whose (d) ends below (a): its split sizes, whether (c) was already below (a), and the
    labels of the held-out examples it lost with how many of its training and validation examples carry them
    (what the acceptance guard could see).
    """
    p = Personalizer.from_bundle(bundle, runtime=runtime)
    pooled_X = [x for d in devices for x in d.X]
    pooled_y = [y for d in devices for y in d.y]
    p.fit(pooled_X, pooled_y, accept="always")
    central = p.head_parameters()
    rows = {k: [] for k in "abcde"}
    below = []
    for i, d in enumerate(devices):
        X, y, Xt, yt = list(d.X), list(d.y), list(d.X_test), list(d.y_test)
        p.rollback(0)
        rows["a"].append(p.score(Xt, yt))
        shipped_right = p.predict(Xt) == np.array(yt)
        p.fit(X, y)  # from the shipped head, guarded against it
        rows["b"].append(p.score(Xt, yt))
        p.set_head(head, source="federated")
        rows["c"].append(p.score(Xt, yt))
        p.partial_fit(X, y)  # the FedPer way: the fleet's head, then the device's own data, guarded
        rows["d"].append(p.score(Xt, yt))
        if rows["d"][-1] < rows["a"][-1] - 1e-9:
            below.append(
                _below(i, X, y, Xt, yt, shipped_right & (p.predict(Xt) != np.array(yt)), p, rows["c"][-1] < rows["a"][-1] - 1e-9)
            )
        p.set_head(central, source="central")
        rows["e"].append(p.score(Xt, yt))
    a, d = np.array(rows["a"]), np.array(rows["d"])
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    out["devices_d_worse_than_a"] = int((d < a - 1e-9).sum())
    out["devices_b_worse_than_a"] = int((np.array(rows["b"]) < a - 1e-9).sum())
    out["devices_d_below_a"] = below
    for name, params in (("shipped", None), ("federated", head), ("central", central)):
        p.rollback(0) if params is None else p.set_head(params, source=name)
        out[f"global_{name}"] = p.score(list(held_out[0]), list(held_out[1]))
    return out


def _below(
    device: int, X: list, y: list[str], Xt: list, yt: list[str], lost: np.ndarray, p: Personalizer, c_below_a: bool
) -> dict:
    """What the guard of a device whose (d) ended below (a) had to decide on (its last partial_fit's report)."""
    from device_runtime.acceptance import validation_split

    report = p.report_.to_dict()
    targets = np.array([p.labels.index(label) for label in y])
    _, validation = validation_split(targets, p.config.validation_fraction, p.config.seed)  # as partial_fit drew it
    held = [y[j] for j in validation]
    return {
        "device": device,
        "train": report["train_examples"],
        "validation": report["validation_examples"],
        "test": len(Xt),
        "c_below_a": c_below_a,
        "accepted": report["accepted"],
        "lost": [
            {"label": label, "examples": y.count(label), "in_validation": held.count(label)}
            for label in (yt[j] for j in np.flatnonzero(lost))
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset",
        choices=sorted(MODES),
        default="bbc",
        help="bbc: BBC News on MiniLM; fashion: Fashion-MNIST on EfficientNet-Lite0 (default: %(default)s)",
    )
    parser.add_argument("--mode", choices=sorted(MODES["bbc"]), default="quick", help="how much work (default: %(default)s)")
    parser.add_argument("--alphas", default="0.3,10", help="Dirichlet alphas, comma-separated (default: %(default)s)")
    parser.add_argument(
        "--work", type=Path, default=Path("benchmarks/results/fleet-work"), help="bundle and feature cache (default: %(default)s)"
    )
    defaults = FleetConfig()
    parser.add_argument(
        "--local-epochs", type=int, default=defaults.local_epochs, help="epochs per round on each device (default: %(default)s)"
    )
    parser.add_argument(
        "--local-schedule",
        default=defaults.local_schedule.value,
        help="learning-rate schedule within a round (default: %(default)s)",
    )
    parser.add_argument("--local-lr", type=float, help="learning rate on the devices (default: the bundle's)")
    parser.add_argument(
        "--aggregation",
        choices=["fedavg", "fedadam"],
        default=defaults.aggregation.value,
        help="Flower strategy over the heads (default: %(default)s)",
    )
    parser.add_argument(
        "--server-lr", type=float, default=defaults.server_lr, help="FedAdam's server step size (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, help="results folder (default: docs/fleet, or docs/fleet/fashion)")
    args = parser.parse_args()
    mode = MODES[args.dataset][args.mode]
    out = args.out or Path("docs/fleet" if args.dataset == "bbc" else "docs/fleet/fashion")
    args.work.mkdir(parents=True, exist_ok=True)
    bundle, (pool_X, pool_y), held_out = PREPARE[args.dataset](args.work, mode["held_out"])
    runtime = RuntimeConfig(engine="numpy", cache_dir=str(args.work / "features"))
    t = time.monotonic()
    Personalizer.from_bundle(bundle, runtime=runtime).transform(
        list(pool_X) + list(held_out[0])
    )  # every feature once, into the cache
    feature_seconds = time.monotonic() - t
    local = {
        "epochs": args.local_epochs,
        "schedule": args.local_schedule,
        "lr": args.local_lr or "the bundle's",
        "aggregation": args.aggregation,
        "server_lr": args.server_lr,
    }
    results = {"dataset": args.dataset, "mode": args.mode, "feature_seconds": feature_seconds, "local": local, "runs": {}}
    for alpha in (float(a) for a in args.alphas.split(",")):
        devices = dirichlet_devices(pool_X, pool_y, mode["devices"], alpha, sizes=mode["sizes"], seed=0)
        config = FleetConfig(
            rounds=mode["rounds"],
            min_available_clients=mode["devices"],
            min_train_clients=mode["devices"],
            min_evaluate_clients=mode["devices"],
            local_epochs=args.local_epochs,
            local_schedule=args.local_schedule,
            local_lr=args.local_lr,
            aggregation=args.aggregation,
            server_lr=args.server_lr,
        )
        run = simulate(bundle, devices, config, eval_data=held_out, runtime=runtime)
        rounds = run.rounds
        results["runs"][str(alpha)] = {
            "per_round_global_accuracy": [r["central"]["accuracy"] for r in rounds],
            "seconds_per_round": [r["seconds"] for r in rounds[1:]],
            "accepted_share_per_round": [r["train"]["accepted"] for r in rounds[1:]],  # weighted by examples
            "bytes_sent_per_device_round": rounds[-1]["train"]["bytes-sent"],
            "bytes_received_per_device_round": rounds[-1]["train"]["bytes-received"],
            "examples": sum(len(d.X) + len(d.X_test) for d in devices),
            **compare(bundle, runtime, devices, run.head, held_out),
        }
        print(json.dumps(results["runs"][str(alpha)], indent=1))
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "results.json", results)
    atomic.write_bytes(out / "results.md", report(results, mode).encode())
    plot(results, out / "fleet.png")
    print(report(results, mode))


def report(results: dict, mode: dict) -> str:
    local = results["local"]
    strategy = "FedAvg" if local.get("aggregation", "fedavg") == "fedavg" else f"FedAdam (server lr {local['server_lr']})"
    lines = [
        (
            f"{mode['devices']} devices, {mode['rounds']} rounds of {strategy} ({local['epochs']} local epochs, {local['schedule']} "
            f"learning rate {local['lr']} within a round), {mode['held_out']} global held-out {UNIT[results['dataset']]}; "
            f"features once: {results['feature_seconds']:.0f} s"
        ),
        "",
        (
            "| alpha | (a) shipped | (b) alone | (c) federated | (d) fed + local | (e) central | global: shipped / fed / central "
            "| devices (d) < (a) | bytes sent / received per device-round | s per round |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for alpha, r in results["runs"].items():
        lines.append(
            f"| {alpha} | {r['a']:.3f} | {r['b']:.3f} | {r['c']:.3f} | {r['d']:.3f} | {r['e']:.3f} | "
            f"{r['global_shipped']:.3f} / {r['global_federated']:.3f} / {r['global_central']:.3f} | "
            f"{r['devices_d_worse_than_a']} of {mode['devices']} | {r['bytes_sent_per_device_round']:.0f} / "
            f"{r['bytes_received_per_device_round']:.0f} | {np.mean(r['seconds_per_round']):.1f} |"
        )
    lines += [
        "",
        (
            "Global held-out accuracy per round (round 0 is the shipped head), and the share of examples on devices "
            "whose guard accepted their round's head:"
        ),
        "",
    ]
    for alpha, r in results["runs"].items():
        lines.append(
            f"- alpha {alpha}: "
            + ", ".join(f"{a:.3f}" for a in r["per_round_global_accuracy"])
            + "; accepted: "
            + ", ".join(f"{a:.2f}" for a in r["accepted_share_per_round"])
        )
    lines += ["", "Devices whose (d) ends below (a), and what their guard saw:", ""]
    for alpha, r in results["runs"].items():
        below = r["devices_d_below_a"]
        lost = [x for b in below for x in b["lost"]]
        sizes = "; ".join(f"{b['train']}/{b['validation']}/{b['test']}" for b in below)
        lines.append(
            f"- alpha {alpha}: {len(below)} devices (train/validation/test examples: {sizes or 'none'}); (c) already below "
            f"(a) on {sum(b['c_below_a'] for b in below)}; local step accepted on {sum(b['accepted'] for b in below)}; "
            f"{len(lost)} held-out examples lost, {sum(x['in_validation'] == 0 for x in lost)} of a label absent from the "
            f"device's validation split ({sum(x['examples'] <= 1 for x in lost)} of a label with at most one example there)"
        )
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
    right.set(
        ylabel="mean accuracy on devices' own splits", title="(a) shipped (b) alone (c) federated (d) fed+local (e) central"
    )
    left.legend()
    right.legend()
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


if __name__ == "__main__":
    main()
