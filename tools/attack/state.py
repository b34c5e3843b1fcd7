"""State tampering, concurrent writers and readers, SIGKILLs of a fit+save loop, and non-finite heads."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tools.attack.common import Tally

TEXTS = [f"text number {i} about {topic}" for i in range(6) for topic in ("markets", "football")]


def _labels(labels: list[str]) -> list[str]:
    return [labels[i % 2] for i in range(len(TEXTS))]


def _saved_state(bundle: Path, folder: Path) -> None:
    from device_runtime import Personalizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = Personalizer.load(bundle)
        p.fit(TEXTS, _labels(p.labels), epochs=2, accept="always")
        p.fit(TEXTS, _labels(p.labels), epochs=2, accept="always")
        p.save(folder)


STATE_EDITS: dict[str, Callable[[dict], object]] = {
    "format_version 1": lambda r: r.__setitem__("format_version", 1),
    "format_version str": lambda r: r.__setitem__("format_version", "2"),
    "no versions": lambda r: r.__setitem__("versions", []),
    "current 99": lambda r: r.__setitem__("current", 99),
    "current -1": lambda r: r.__setitem__("current", -1),
    "current str": lambda r: r.__setitem__("current", "1"),
    "engine bogus": lambda r: r.__setitem__("engine", "tpu"),
    "file ../x": lambda r: r["versions"][-1].__setitem__("file", "../x.npz"),
    "file abs": lambda r: r["versions"][-1].__setitem__("file", "/etc/passwd"),
    "file nul": lambda r: r["versions"][-1].__setitem__("file", "a\u0000b"),
    "sha wrong": lambda r: r["versions"][-1].__setitem__("sha256", "0" * 64),
    "optimizer missing": lambda r: r["optimizer"].__setitem__("file", "opt-0000000000000000.npz"),
    "optimizer sha": lambda r: r["optimizer"].__setitem__("sha256", "f" * 64),
    "bundle path gone": lambda r: r["bundle"].__setitem__("path", "/nonexistent/bundle"),
    "bundle path nul": lambda r: r["bundle"].__setitem__("path", "/tmp/a\u0000b"),
    "fingerprint other": lambda r: r["bundle"].__setitem__("fingerprint", "0" * 16),
    "config junk": lambda r: r.__setitem__("config", {"epochs": "x"}),
    "config unknown key": lambda r: r["config"].__setitem__("bogus", 1),
    "config lr nan": lambda r: r["config"].__setitem__("lr", float("nan")),
    "history str": lambda r: r.__setitem__("history", "x"),
    "report list": lambda r: r.__setitem__("report", []),
    "seen negative": lambda r: r["seen"].__setitem__("count", -5),
    "seen mean short": lambda r: r["seen"].__setitem__("feature_mean", [0.0]),
    "monitor shape": lambda r: r["monitor"].__setitem__("shape", [5, 3]) if r.get("monitor") else r.__setitem__("monitor", {}),
    "monitor junk b64": lambda r: r["monitor"].__setitem__("features", "!!") if r.get("monitor") else None,
    "added label surrogate": lambda r: r.__setitem__("added_labels", ["\ud800"]),
    "added labels 99": lambda r: r.__setitem__("added_labels", [f"l{i}" for i in range(99)]),
    "added label known": lambda r: r.__setitem__("added_labels", ["x", "x"]),
    "pinned 99": lambda r: r.__setitem__("pinned", [99]),
    "extra key": lambda r: r.__setitem__("extra", 1),
    "versions unordered": lambda r: r.__setitem__("versions", list(reversed(r["versions"]))),
    "version 0 with file": lambda r: r["versions"][0].__setitem__("file", r["versions"][-1]["file"]),
    "metrics list": lambda r: r["versions"][-1].__setitem__("metrics", [1]),
}
RAW_EDITS: dict[str, bytes] = {
    "empty": b"",
    "not json": b"{",
    "array": b"[]",
    "deep": b"[" * 100_000,
    "nan": b'{"format_version": NaN}',
    "utf16": '{"format_version": 2}'.encode("utf-16"),
    "surrogate": b'{"format_version": 2, "x": "\\ud800"}',
    "huge number": b'{"format_version": 2' + b"0" * 5000 + b"}",
}
FILE_OPS: dict[str, Callable[[Path], None]] = {
    "delete": lambda f: f.unlink(),
    "empty": lambda f: f.write_bytes(b""),
    "garbage": lambda f: f.write_bytes(os.urandom(256)),
    "truncate": lambda f: f.write_bytes(f.read_bytes()[:100]),
    "directory": lambda f: (f.unlink(), f.mkdir()),
}


def tampering(bundle: Path, tally: Tally) -> None:
    """A saved state altered in each way, then loaded: a typed error or a state that loads, never a raw exception."""
    from device_runtime import Personalizer
    from edgeft.bundle import file_sha256

    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp) / "good"
        _saved_state(bundle, good)
        record = json.loads((good / "state.json").read_text())
        cases: list[tuple[str, Callable[[Path], None]]] = []
        for name, edit in STATE_EDITS.items():
            cases.append((f"state.json {name}", lambda f, edit=edit: _edit_record(f, edit)))
        for name, raw in RAW_EDITS.items():
            cases.append((f"state.json {name}", lambda f, raw=raw: (f / "state.json").write_bytes(raw)))
        files = [v["file"] for v in record["versions"] if v["file"]] + [record["optimizer"]["file"]]
        for file in files:
            for op_name, op in FILE_OPS.items():
                cases.append((f"{file[:3]} {op_name}", lambda f, file=file, op=op: op(f / file)))
                cases.append((f"{file[:3]} {op_name} rehashed", lambda f, file=file, op=op: _rehashed(f, file, op, file_sha256)))
        cases.append(("version NaN rehashed", lambda f: _nan_version(f, file_sha256)))
        cases.append(("state.json is a folder", lambda f: ((f / "state.json").unlink(), (f / "state.json").mkdir())))
        for n, (name, tamper) in enumerate(cases):
            folder = Path(shutil.copytree(good, Path(tmp) / f"c{n}"))
            tamper(folder)
            tally.call(name, lambda folder=folder: Personalizer.load(folder).predict(TEXTS[:2]))


def _edit_record(folder: Path, edit: Callable[[dict], object]) -> None:
    record = json.loads((folder / "state.json").read_text())
    edit(record)
    (folder / "state.json").write_text(json.dumps(record, ensure_ascii=True))


def _rehashed(folder: Path, file: str, op: Callable[[Path], None], sha: Callable[[Path], str]) -> None:
    op(folder / file)
    record = json.loads((folder / "state.json").read_text())
    for entry in [*record["versions"], record["optimizer"]]:
        if entry["file"] == file and (folder / file).is_file():
            entry["sha256"] = sha(folder / file)
    (folder / "state.json").write_text(json.dumps(record))


def _nan_version(folder: Path, sha: Callable[[Path], str]) -> None:
    record = json.loads((folder / "state.json").read_text())
    entry = record["versions"][-1]
    with np.load(folder / entry["file"]) as data:
        arrays = {k: np.full_like(data[k], np.nan) for k in data.files}
    np.savez(folder / entry["file"], **arrays)
    entry["sha256"] = sha(folder / entry["file"])
    (folder / "state.json").write_text(json.dumps(record))


def non_finite(bundle: Path, tally: Tally) -> None:
    """Diverged heads: set_head with NaN/inf, and a NaN head as an accepted version, then saved. None may be saved."""
    from device_runtime import Personalizer
    from device_runtime.state import read_state

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = Personalizer.load(bundle)
        head = base.head_parameters()
        for n, value in enumerate((np.nan, np.inf, -np.inf)):
            bad = {k: np.full_like(v, value) for k, v in head.items()}
            tally.call(f"set_head {value}", lambda bad=bad: base.set_head(bad))
            for how in ("version", "engine"):
                p = Personalizer.load(bundle)
                if how == "version":
                    p.versions_.add(bad, {"source": "diverged"})
                p._engine.set_parameters(bad)
                folder = Path(tmp) / f"s{n}{how}"
                tally.call(f"save {how} {value}", lambda p=p, folder=folder: p.save(folder))
                if (folder / "state.json").is_file():
                    _, parameters, _ = read_state(folder)
                    if any(not np.all(np.isfinite(a)) for v in parameters.values() for a in v.values()):
                        tally.fail(f"save {how} {value}", "a non-finite head was written", "bypasses")
        diverged = Personalizer.load(bundle)
        tally.call(
            "fit lr 1e30 always", lambda: diverged.fit(TEXTS, _labels(diverged.labels), lr=1e30, epochs=5, accept="always")
        )
        tally.kinds += 1
        if not all(np.all(np.isfinite(v)) for v in diverged.head_parameters().values()):
            tally.fail("fit lr 1e30 always", "the guard accepted a non-finite head (issue 24's decision)", "bypasses")
        tally.call("save after lr 1e30", lambda: diverged.save(Path(tmp) / "diverged"))


WRITER = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    from device_runtime import Personalizer
    from tools.attack.state import TEXTS, _labels
    bundle, state, loops = sys.argv[1], sys.argv[2], int(sys.argv[3])
    p = Personalizer.load(bundle)
    failures = 0
    for i in range(loops):
        p.partial_fit(TEXTS, _labels(p.labels), epochs=1, accept="always")
        try:
            p.save(state)
        except Exception as e:
            failures += 1
            print("save failed:", type(e).__name__, e, file=sys.stderr, flush=True)
        print("saved", i, flush=True)
    print("failures", failures, flush=True)
    """
)
READER = textwrap.dedent(
    """
    import sys, time, warnings
    warnings.simplefilter("ignore")
    from device_runtime import Personalizer
    state, seconds = sys.argv[1], float(sys.argv[2])
    ok = failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            Personalizer.load(state)
            ok += 1
        except Exception as e:
            failed += 1
            print("load failed:", type(e).__name__, str(e)[:200], file=sys.stderr, flush=True)
    print("loads", ok, failed, flush=True)
    """
)


def _spawn(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _loads(folder: Path) -> str | None:
    """None if the state in ``folder`` loads, else why not."""
    from device_runtime import Personalizer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Personalizer.load(folder)
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {str(e)[:200]}"
    return None


def concurrent(bundle: Path, tally: Tally, trials: int, loops: int) -> None:
    """Two writers saving one folder, and a reader loading it beside them: every save and load succeeds, the end state loads."""
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(trials):
            folder = Path(tmp) / f"shared{trial}"
            _saved_state(bundle, folder)
            writers = [_spawn(WRITER, str(bundle), str(folder), str(loops)) for _ in range(2)]
            reader = _spawn(READER, str(folder), "25")
            for process in [*writers, reader]:
                out, err = process.communicate(timeout=600)
                tally.kinds += 1
                last = out.strip().splitlines()[-1:] or ["(no output)"]
                bad = err.count("save failed") + err.count("load failed")
                if process.returncode != 0 or bad:
                    tally.fail(f"trial {trial}", f"rc {process.returncode}, {bad} failed: {last} {err.strip()[-200:]}", "untyped")
                else:
                    tally.typed += 1
            tally.kinds += 1
            if why := _loads(folder):
                tally.fail(f"trial {trial} end state", why, "bypasses")


def kills(bundle: Path, tally: Tally, count: int, seed: int = 0) -> None:
    """SIGKILL a fit+save loop at random moments after it has saved; the state must load after every kill."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "state"
        _saved_state(bundle, folder)
        for n in range(count):
            writer = _spawn(WRITER, str(bundle), str(folder), "1000")
            assert writer.stdout is not None
            line = writer.stdout.readline()  # the first save: the loop is past its start-up
            if not line.startswith("saved"):
                writer.kill()
                tally.fail(f"kill {n}", f"the writer did not save: {writer.stderr.read()[-300:] if writer.stderr else ''}")
                continue
            time.sleep(rng.uniform(0, 0.4))
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            tally.kinds += 1
            if why := _loads(folder):
                tally.fail(f"kill {n}", why, "bypasses")
            else:
                tally.typed += 1
