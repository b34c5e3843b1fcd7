"""Flower's deployment engine: a real SuperLink (``edgeft fleet serve``) and SuperNodes (``edgeft fleet join``).

``serve`` starts a SuperLink, writes a small Flower App whose components are this module's
``server`` and ``client`` (the code itself is the installed ``fleet`` package), submits it with
``flwr run``, follows it to the end, then stops the SuperLink. ``join`` runs one SuperNode that
connects to it with the device's bundle and data in its node config. A SuperNode is Flower's
long-running daemon: it outlives the SuperLink (flwr 1.42 keeps retrying past ``--max-wait-time``),
so whoever starts one stops it (:func:`stop`; ``edgeft fleet join --max-seconds``).

:func:`stop` ends a process and every process below it, found before any is signalled: Flower's
SuperLink starts its SuperExec (and that its ServerApp) in sessions of their own, which a signal to the
SuperLink's process group misses. :func:`serve` and :func:`run_node` turn a SIGTERM into the same
clean-up as Ctrl-C (:func:`terminate_as_interrupt`).

Connections use TLS unless ``insecure`` is asked for (:class:`Tls`: certificate files by path).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from edgeft.errors import ConfigError
from fleet.client import client_app
from fleet.config import Aggregation, FleetConfig, PrivacyConfig
from fleet.server import Publish, run_fleet

RUN_KEY = "edgeft-fleet"  # the run-config key holding the run's settings as JSON

server = ServerApp()
client = client_app()  # bundle, data and test-data come from each SuperNode's node config


@server.main()
def _main(grid: Grid, context: Context) -> None:
    settings = json.loads(str(context.run_config[RUN_KEY]))
    raw = settings["config"]
    privacy = PrivacyConfig(**raw["privacy"]) if raw.get("privacy") else None
    config = FleetConfig(**{**raw, "privacy": privacy, "aggregation": Aggregation(raw["aggregation"])})
    publish = Publish(**settings["publish"]) if settings.get("publish") else None
    run_fleet(grid, settings["bundle"], config, publish=publish)


@dataclasses.dataclass(frozen=True)
class Tls:
    """Certificates for TLS between SuperLink, SuperNodes and ``flwr run`` (PEM files, by path).

    The SuperLink needs ``certificate`` and ``key`` (and ``ca``, which signed the certificate); a SuperNode
    and ``flwr run`` need only ``ca``, to verify the SuperLink.
    """

    ca: str  # the CA certificate that signed the SuperLink's certificate
    certificate: str | None = None  # the SuperLink's certificate
    key: str | None = None  # its private key

    def check(self, *, server: bool) -> None:
        """Raises ConfigError where a file a side needs is missing."""
        needed = {"ca": self.ca, **({"certificate": self.certificate, "key": self.key} if server else {})}
        for name, path in needed.items():
            if not path or not Path(path).is_file():
                raise ConfigError(f"TLS: the {name} file {path!r} does not exist; give it by path, or pass --insecure.")

    def superlink_flags(self) -> list[str]:
        return ["--ssl-ca-certfile", str(self.ca), "--ssl-certfile", str(self.certificate), "--ssl-keyfile", str(self.key)]


def _security(tls: Tls | None, *, server: bool) -> list[str]:
    """Flower's security flags: TLS with ``tls``'s files, or ``--insecure`` where ``tls`` is None (asked for)."""
    if tls is None:
        return ["--insecure"]
    tls.check(server=server)
    return tls.superlink_flags() if server else ["--root-certificates", str(Path(tls.ca).resolve())]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the SuperLink listens (one HTTP port for its Fleet, Control and ServerApp APIs)."""

    host: str = "127.0.0.1"
    port: int = 9092


def serve(
    bundle: str | os.PathLike,
    config: FleetConfig,
    publish: Publish,
    *,
    endpoint: Endpoint = Endpoint(),
    timeout: float = 3600.0,
    log: Path | None = None,
    tls: Tls | None = None,
) -> Path:
    """Start a SuperLink, run the fleet on the SuperNodes that join it, write the bundle, stop (``edgeft fleet serve``).

    Args:
        bundle: the bundle the devices started from (they must hold the same one).
        config: rounds, sampling, aggregation, privacy; the run waits for ``min_available_clients`` devices.
        publish: where the global head is written (and pushed).
        endpoint: the SuperLink's address.
        timeout: seconds the whole run may take before it is stopped.
        log: a file for the SuperLink's log (default: none kept).
        tls: the SuperLink's certificates; None: no TLS (``--insecure``, only for tests and trusted networks).

    Returns:
        The written bundle's folder.

    Raises:
        ConfigError: the run did not finish, or finished without writing the bundle; a TLS file is missing.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the SuperLink and everything it started are stopped first.
    """
    security = _security(tls, server=True)
    with tempfile.TemporaryDirectory(prefix="edgeft-fleet-") as home, terminate_as_interrupt():
        env = {**_env(), "FLWR_HOME": home}
        app = _write_app(Path(home) / "app", bundle, config, publish)
        _write_connection(Path(home), endpoint, tls)
        link = _spawn(
            [
                _tool("flower-superlink"),
                *security,
                "--host",
                endpoint.host,
                "--port",
                str(endpoint.port),
                "--disable-runtime-dependency-installation",
            ],
            env,
            log,
        )
        try:
            _wait_for_port(endpoint, link, 60.0)
            done = subprocess.run(
                [_tool("flwr"), "run", str(app), "local", "--stream"],
                env=env,
                timeout=timeout,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise ConfigError(f"The fleet run failed (flwr run exited {done.returncode}): {done.stderr[-2000:]}")
        except subprocess.TimeoutExpired:
            raise ConfigError(f"The fleet run did not finish within {timeout:.0f} s; it was stopped.") from None
        finally:
            stop(link)
    if not (Path(publish.output) / "manifest.json").is_file():
        raise ConfigError(f"The fleet run ended without writing {publish.output}; see the SuperLink's log.")
    return Path(publish.output)


def join(
    bundle: str | os.PathLike,
    data: str | os.PathLike,
    test_data: str | os.PathLike,
    *,
    superlink: Endpoint = Endpoint(),
    port: int = 9094,
    max_wait: float = 30.0,
    flower_home: str | os.PathLike | None = None,
    log: str | os.PathLike | None = None,
    tls: Tls | None = None,
) -> subprocess.Popen:
    """Start a SuperNode that takes part in the fleet's runs with this device's data (``edgeft fleet join``).

    Args:
        bundle: the device's bundle folder.
        data: the device's labelled examples (.csv, .jsonl or .npz); they never leave the device.
        test_data: its held-out examples, on which it scores each global head.
        superlink: the SuperLink's address.
        port: this SuperNode's own port for its ClientApp (one per SuperNode on a machine).
        max_wait: Flower's ``--max-wait-time``: seconds of connection errors before a request gives up.
        flower_home: the folder where Flower installs the run's app (default: Flower's, ``~/.flwr``).
        log: a file for the SuperNode's log (default: this process's output).
        tls: the CA that signed the SuperLink's certificate; None: no TLS (``--insecure``).

    Returns:
        The SuperNode's process; end it with :func:`stop` (it and its ClientApp processes).

    Raises:
        ConfigError: a file is missing.
    """
    paths = {"bundle": bundle, "data": data, "test-data": test_data}
    for key, value in paths.items():
        if not Path(value).exists():
            raise ConfigError(f"--{key} {value} does not exist.")
    security = _security(tls, server=False)
    node_config = " ".join(f'{key}="{Path(value).resolve()}"' for key, value in paths.items())
    env = _env() | ({"FLWR_HOME": str(flower_home)} if flower_home else {})
    return _spawn(
        [
            _tool("flower-supernode"),
            *security,
            "--superlink",
            f"{superlink.host}:{superlink.port}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--node-config",
            node_config,
            "--max-wait-time",
            str(max_wait),
        ],
        env,
        log,
    )


def _spawn(command: list[str], env: dict[str, str], log: str | os.PathLike | None) -> subprocess.Popen:
    """Start ``command`` in its own session (so that :func:`stop` ends its children too), logging to ``log``."""
    with open(log, "ab") if log else contextlib.nullcontext() as out:  # the child keeps its own copy of the file
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)


def _write_app(folder: Path, bundle: str | os.PathLike, config: FleetConfig, publish: Publish) -> Path:
    """A Flower App of one pyproject.toml: its components are this module's, installed with edgeft."""
    settings = {
        "bundle": str(Path(bundle).resolve()),
        "config": config.provenance(),
        "publish": dataclasses.asdict(dataclasses.replace(publish, output=str(Path(publish.output).resolve()))),
    }
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "edgeft-fleet"\nversion = "1.0.0"\ndependencies = []\n\n'
        '[tool.flwr.app]\npublisher = "edgeft"\n\n'
        '[tool.flwr.app.components]\nserverapp = "fleet.deployment:server"\nclientapp = "fleet.deployment:client"\n\n'
        f"[tool.flwr.app.config]\n{RUN_KEY} = {json.dumps(json.dumps(settings))}\n"
    )
    return folder


def _write_connection(home: Path, endpoint: Endpoint, tls: Tls | None) -> None:
    security = "insecure = true" if tls is None else f"root-certificates = {json.dumps(str(Path(tls.ca).resolve()))}"
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "{endpoint.host}:{endpoint.port}"\n{security}\n'
    )


def _env() -> dict[str, str]:
    """This environment, with this Python's scripts first on PATH: Flower starts its helpers (flower-superexec) by name."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}


def _tool(name: str) -> str:
    """A Flower command from this Python's environment (the fleet extra installs them beside it)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise ConfigError(f"{name} not found: install the fleet extra (pip install 'edgeft[fleet]').")
    return found


def _wait_for_port(endpoint: Endpoint, process: subprocess.Popen, seconds: float) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"The SuperLink exited ({process.returncode}) before listening on {endpoint.host}:{endpoint.port}.")
        with socket.socket() as s:
            if s.connect_ex((endpoint.host, endpoint.port)) == 0:
                return
        time.sleep(0.2)
    raise ConfigError(f"The SuperLink did not listen on {endpoint.host}:{endpoint.port} within {seconds:.0f} s.")


def run_node(node: subprocess.Popen, max_seconds: float | None = None) -> None:
    """Wait for a SuperNode from :func:`join` until it ends, ``max_seconds`` pass, Ctrl-C or SIGTERM; then stop it."""
    try:
        with terminate_as_interrupt():
            node.wait(max_seconds)
    except subprocess.TimeoutExpired:
        pass
    finally:
        stop(node)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within this block SIGTERM raises KeyboardInterrupt, so that ``finally`` clean-ups run as on Ctrl-C.

    Outside the main thread (where Python cannot set handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process and every process below it, SIGTERM first, SIGKILL to what is left after ``grace`` seconds."""
    tree = [process.pid, *descendants(process.pid)]  # found first: once a parent is gone, its children are orphans
    for pid in tree:
        _signal(pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + grace
    while (alive := [pid for pid in tree if running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:
        _signal(pid, signal.SIGKILL)
    process.wait()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), whatever session each started, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # it ended while we looked
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and parentheses
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def running(pid: int) -> bool:
    """Running (not ended, nor a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
