"""The real deployment path: a SuperLink and three SuperNodes as separate processes on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from edgeft.bundle import FLEET, Bundle
from edgeft.data import write_examples
from fleet import Endpoint, FleetConfig, Publish, join, serve, stop

LEAVER = 2  # this SuperNode is killed once its training message has arrived


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def supernodes(minilm_bundle: Path, bbc_devices, tmp_path: Path):
    link = Endpoint(port=_free_port())
    nodes, logs = [], []
    for i, device in enumerate(bbc_devices[:3]):
        write_examples(tmp_path / f"train{i}.csv", device.X, device.y)
        write_examples(tmp_path / f"test{i}.csv", device.X_test, device.y_test)
        logs.append(tmp_path / f"node{i}.log")
        nodes.append(
            join(
                minilm_bundle,
                tmp_path / f"train{i}.csv",
                tmp_path / f"test{i}.csv",
                superlink=link,
                port=_free_port(),
                max_wait=5,
                flower_home=tmp_path / f"home{i}",
                log=logs[-1],
            )
        )
    yield link, nodes, logs
    for node in nodes:
        stop(node, grace=5)


def _kill_when_training(node: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline and node.poll() is None:
        if log.is_file() and "Receiving: train message" in log.read_text(errors="replace"):
            stop(node, grace=0.1)
            return
        time.sleep(0.2)


def test_a_round_over_three_supernodes_survives_one_dropping_out(minilm_bundle: Path, supernodes, tmp_path: Path) -> None:
    link, nodes, logs = supernodes
    killer = threading.Thread(target=_kill_when_training, args=(nodes[LEAVER], logs[LEAVER], time.monotonic() + 240), daemon=True)
    killer.start()
    config = FleetConfig(rounds=1, min_available_clients=3, min_train_clients=2, fraction_evaluate=0.0, round_timeout=30)
    out = serve(
        minilm_bundle, config, Publish(str(tmp_path / "fleet-bundle")), endpoint=link, timeout=240, log=tmp_path / "superlink.log"
    )
    killer.join(5)
    assert nodes[LEAVER].poll() is not None  # it really left mid-round
    bundle = Bundle.load(out)
    provenance = json.loads((out / FLEET).read_text())
    assert bundle.manifest.version == "1.0.0+fleet.1"
    assert (provenance["rounds"], provenance["clients"], provenance["examples"]) == (1, 2, 20)
