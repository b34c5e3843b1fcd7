"""A federated run on Flower's simulation engine, on the real MiniLM bundle: what improves, what crosses, what is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from device_runtime import Personalizer
from edgeft.bundle import Bundle
from edgeft.layout import FLEET
from fleet import FleetConfig, Publish, simulate

BAD_DEVICE = 3  # sends a NaN head in round 1 and a misshaped one in round 2


def _spy_and_spoil(log: str):
    """A Flower mod that records what leaves each device, and makes device BAD_DEVICE send heads that cannot be averaged."""

    def mod(msg, context, call_next):
        from flwr.app import Array, ArrayRecord, MessageType

        reply = call_next(msg, context)
        device = int(context.node_config["partition-id"])
        if msg.metadata.message_type == MessageType.QUERY:
            record = {k: {n: list(a.shape) for n, a in r.items()} for k, r in reply.content.array_records.items()}
            with open(log, "a") as f:
                f.write(json.dumps({"device": device, "query": record, "other": list(reply.content.config_records)}) + "\n")
        if msg.metadata.message_type != MessageType.TRAIN:
            return reply
        if device == BAD_DEVICE:
            head = {k: v.numpy().copy() for k, v in reply.content["arrays"].items()}
            name = min(head)
            head[name] = np.full_like(head[name], np.nan) if msg.content["config"]["server-round"] == 1 else head[name][:-1]
            reply.content["arrays"] = ArrayRecord({k: Array(v) for k, v in head.items()})
        content = reply.content
        record = {
            "device": device,
            "arrays": {k: [list(a.shape), a.numpy().nbytes] for k, a in content["arrays"].items()},
            "serialized": sum(len(a.data) for a in content["arrays"].values()),
            "array_records": list(content.array_records),
            "config_records": list(content.config_records),
            "metric_records": list(content.metric_records),
            "metrics": dict(content["metrics"]),
        }
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
        return reply

    return mod


@pytest.fixture(scope="module")
def run(minilm_bundle: Path, bbc_devices, bbc_splits, fleet_runtime, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("fleet")
    log = str(folder / "replies.jsonl")
    texts, labels = bbc_splits["test"]
    # FedAdam here (FedAvg, the default, runs in the privacy and deployment tests): its server-side update is
    # float64, and what it sends back must still be the float32 head
    config = FleetConfig(rounds=2, min_available_clients=4, min_train_clients=4, min_evaluate_clients=4, aggregation="fedadam")
    result = simulate(
        minilm_bundle,
        bbc_devices,
        config,
        publish=Publish(str(folder / "bundle")),
        eval_data=(texts[::3], labels[::3]),
        mods=[_spy_and_spoil(log)],
        runtime=fleet_runtime,
    )
    replies = [json.loads(line) for line in Path(log).read_text().splitlines()]
    return {
        "result": result,
        "replies": [r for r in replies if "query" not in r],
        "queries": [r for r in replies if "query" in r],
        "folder": folder,
    }


def test_the_global_head_beats_the_shipped_one_on_held_out_articles(run, minilm_bundle: Path, bbc_splits) -> None:
    rounds = run["result"].rounds
    texts, labels = bbc_splits["test"]
    shipped = Personalizer.from_bundle(minilm_bundle).evaluate(texts[::3], labels[::3])
    start, final = rounds[0]["central"], rounds[-1]["central"]  # round 0: the closed-form start
    assert start["loss"] < shipped["loss"] and final["loss"] < shipped["loss"]
    assert start["accuracy"] > shipped["accuracy"] and final["accuracy"] > shipped["accuracy"]
    assert rounds[-1]["devices"]["accuracy"] > 0  # the devices scored it on their own held-out splits too


def test_only_the_heads_arrays_and_counts_leave_a_device(run, minilm_bundle: Path) -> None:
    head = Personalizer.from_bundle(minilm_bundle).head_parameters()
    good = [r for r in run["replies"] if r["device"] != BAD_DEVICE]
    assert len(good) == 2 * 3
    for reply in good:
        assert reply["array_records"] == ["arrays"] and reply["config_records"] == []
        assert reply["arrays"] == {k: [list(v.shape), v.nbytes] for k, v in head.items()}
        outputs = 5 + 4  # five topics and the bundle's four spare slots
        assert reply["metrics"]["bytes-sent"] == sum(v.nbytes for v in head.values()) == 384 * outputs * 4 + outputs * 4
        assert reply["serialized"] - reply["metrics"]["bytes-sent"] < 300  # the values plus Flower's per-array header
        assert reply["metrics"]["bytes-received"] == reply["metrics"]["bytes-sent"]  # round 2 receives the aggregated head
        assert reply["metrics"]["num-examples"] == 10


def test_before_the_rounds_a_device_sends_only_its_summed_statistics_and_losses(run) -> None:
    statistics = {"statistics": {"gram": [385, 385], "sums": [5, 385]}}
    calibration = {"calibration": {"losses": [41]}}  # its summed loss at each temperature
    assert sorted(q["device"] for q in run["queries"]) == [0, 0, 1, 1, 2, 2, 3, 3]
    for device in range(4):
        replies = [q["query"] for q in run["queries"] if q["device"] == device]
        assert replies == [statistics, calibration]
    assert all(q["other"] == [] for q in run["queries"])
    start = run["result"].start
    assert (start["kind"], start["devices"], start["rows"], start["labels_fitted"]) == ("gaussian", 4, 40.0, 5)
    assert start["temperature"] > 1  # fitted on 40 rows of 384 features, the head was overconfident
    assert run["result"].rounds[0]["central"]["accuracy"] > 0.8  # the closed-form start on 40 articles, before any round


def test_nan_and_misshaped_heads_are_refused_not_averaged(run) -> None:
    result = run["result"]
    assert [(r["round"], "NaN" in r["reason"] or "shape" in r["reason"]) for r in result.refused] == [(1, True), (2, True)]
    assert [r["clients"] for r in result.rounds[1:]] == [3, 3]
    assert all(np.isfinite(v).all() for v in result.head.values())


def test_the_written_bundle_loads_verifies_and_personalizes(run, bbc_devices) -> None:
    path = run["result"].bundles[-1]
    bundle = Bundle.load(path)
    assert bundle.manifest.version == "1.0.0+fleet.2" and bundle.manifest.head.trained
    provenance = json.loads((path / FLEET).read_text())
    assert (provenance["rounds"], provenance["clients"], provenance["examples"]) == (2, 3, 60)
    assert provenance["aggregation"] == "fedadam" and provenance["privacy"] is None
    assert provenance["start"]["kind"] == "gaussian" and provenance["start"]["privacy"] == {"noise": None, "epsilon": None}
    device = Personalizer(bundle)
    for name, value in run["result"].head.items():
        np.testing.assert_allclose(device.head_parameters()[name], value, atol=1e-6)
    data = bbc_devices[0]
    device.partial_fit(list(data.X), list(data.y), epochs=5)  # the FedPer way: the fleet's head, then the device's own
    assert device.report_.steps > 0 and device.report_.reason
    assert set(device.predict(list(data.X_test))) <= set(bundle.manifest.labels)
