"""The real deployment path: a SuperLink and three SuperNodes as separate processes on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from edgeft.bundle import Bundle
from edgeft.data import write_examples
from edgeft.layout import FLEET
from fleet import Endpoint, FleetConfig, Publish, join, serve, stop
from fleet.deployment import descendants, running

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


def _flower_below(pid: int) -> dict[int, str]:
    """Flower's processes below ``pid``, by pid: their command's program name."""
    names = {}
    for child in descendants(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        program = next((Path(a.decode()).name for a in argv if b"flower-" in a or b"flwr" in a), None)
        if program:
            names[child] = program
    return names


def _sigterm_when_running(command: list[str], programs: set[str], seconds: float = 120) -> tuple[int, dict[int, str]]:
    """Start ``command``, wait until Flower's ``programs`` run below it, send it SIGTERM; its exit code and what ran."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds
    try:
        while not programs <= set((seen := _flower_below(process.pid)).values()):
            assert time.monotonic() < deadline and process.poll() is None, f"only {sorted(seen.values())} started"
            time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        return process.wait(60), seen
    finally:
        if process.poll() is None:
            stop(process, grace=1)


def _still_running(pids: dict[int, str]) -> dict[int, str]:
    time.sleep(0.5)
    return {pid: name for pid, name in pids.items() if running(pid)}


def test_sigterm_to_serve_ends_the_superlink_superexec_and_serverapp(minilm_bundle: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "edgeft",
        "fleet",
        "serve",
        "--bundle",
        str(minilm_bundle),
        "--output",
        str(tmp_path / "out"),
    ]
    command += ["--min-clients", "2", "--port", str(_free_port()), "--insecure"]
    code, seen = _sigterm_when_running(command, {"flower-superlink", "flower-superexec", "flwr-serverapp"})
    assert code == 130
    assert _still_running(seen) == {}


def test_sigterm_to_join_ends_the_supernode_and_its_superexec(minilm_bundle: Path, bbc_devices, tmp_path: Path) -> None:
    write_examples(tmp_path / "train.csv", bbc_devices[0].X, bbc_devices[0].y)
    command = [
        sys.executable,
        "-m",
        "edgeft",
        "fleet",
        "join",
        "--bundle",
        str(minilm_bundle),
        "--data",
        str(tmp_path / "train.csv"),
    ]
    command += [
        "--test-data",
        str(tmp_path / "train.csv"),
        "--superlink",
        f"127.0.0.1:{_free_port()}",
        "--port",
        str(_free_port()),
    ]
    code, seen = _sigterm_when_running([*command, "--insecure"], {"flower-supernode", "flower-superexec"})
    assert code == 130
    assert _still_running(seen) == {}


def test_serve_without_tls_files_or_insecure_is_refused(minilm_bundle: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "edgeft", "fleet", "serve", "--bundle", str(minilm_bundle), "--output", str(tmp_path / "o")]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "Give the TLS files (--tls-ca, and for serve --tls-cert and --tls-key), or pass --insecure." in result.stderr
