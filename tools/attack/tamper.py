"""Tampered bundles with and without a trust policy, and the trust policy over every entry point."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeft.errors import EdgeftError
from tools.attack.common import Tally, copy_bundle, rehash, serving

OPS: dict[str, Callable[[Path], None]] = {
    "delete": lambda f: f.unlink(),
    "empty": lambda f: f.write_bytes(b""),
    "truncate": lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]),
    "garbage": lambda f: f.write_bytes(random.Random(f.name).randbytes(max(f.stat().st_size, 16))),
    "flip": lambda f: f.write_bytes(_flipped(f.read_bytes())),
    "append": lambda f: f.write_bytes(f.read_bytes() + b"\x00junk"),
}
MANIFEST_EDITS: dict[str, Callable[[dict], None]] = {
    "max_length 1": lambda m: m["input"].__setitem__("max_length", 1),
    "max_length 0": lambda m: m["input"].__setitem__("max_length", 0),
    "max_length 10**9": lambda m: m["input"].__setitem__("max_length", 10**9),
    "image_size 1x1": lambda m: m["input"].__setitem__("image_size", [1, 1]),
    "image_size 10**5": lambda m: m["input"].__setitem__("image_size", [100_000, 100_000]),
    "pixel_std 1e-30": lambda m: m["input"].__setitem__("pixel_std", [1e-30] * 3),
    "pixel_mean 4 channels": lambda m: m["input"].__setitem__("pixel_mean", [0.0] * 4),
    "layout swapped": lambda m: m["input"].__setitem__("layout", "NHWC" if m["input"].get("layout") == "NCHW" else "NCHW"),
    "feature_size 7": lambda m: m["backbone"].__setitem__("feature_size", 7),
    "in_features 7": lambda m: m["head"].__setitem__("in_features", 7),
    "out_features +1": lambda m: m["head"].__setitem__("out_features", m["head"]["out_features"] + 1),
    "spare_labels +1": lambda m: m["head"].__setitem__("spare_labels", m["head"]["spare_labels"] + 1),
    "input_names wrong": lambda m: m["input"].__setitem__("input_names", ["pixels"]),
    "output_name wrong": lambda m: m["backbone"].__setitem__("output_name", "nothing"),
    "head output wrong": lambda m: m["head"].__setitem__("output_name", "nothing"),
    "intermediate_shape": lambda m: m["backbone"].__setitem__("intermediate_shape", [3, 3]),
    "backbone_blocks 3": lambda m: m["head"].__setitem__("backbone_blocks", 3),
    "replay_examples 9": lambda m: m["head"].__setitem__("replay_examples", 9),
    "labels swapped": lambda m: m.__setitem__("labels", [m["labels"][1], m["labels"][0], *m["labels"][2:]]),
    "file ../x": lambda m: m["files"].__setitem__("../x", {"size": 1, "sha256": "0" * 64}),
    "file /etc/passwd": lambda m: m["files"].__setitem__("/etc/passwd", {"size": 1, "sha256": "0" * 64}),
    "file nul": lambda m: m["files"].__setitem__("a\u0000b", {"size": 1, "sha256": "0" * 64}),
    "training junk": lambda m: m.__setitem__("training", {"epochs": "many"}),
    "modality swapped": lambda m: m["input"].__setitem__("modality", "image" if m["input"]["modality"] == "text" else "text"),
    "precision": lambda m: m["backbone"].__setitem__("precision", "fp32" if m["backbone"]["precision"] == "int8" else "int8"),
}


def _flipped(data: bytes) -> bytes:
    if not data:
        return b"\x01"
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x5A]) + data[middle + 1 :]


def make_signed(source: Path, into: Path) -> tuple[Path, Path]:
    """A signed copy of ``source`` and a trust file that trusts its key: (bundle, trust file)."""
    from edgeft.signing import create_key, sign_bundle, trust_key

    bundle = copy_bundle(source, into / "signed")
    private, public = create_key(into / "keys", "publisher")
    sign_bundle(bundle, private)
    trust_key(into / "trust.json", public)
    return bundle, into / "trust.json"


def _tampered(signed: Path, into: Path, quick: bool) -> list[tuple[str, Path]]:
    """Copies of ``signed``, each altered one way (a file rewritten, the manifest re-hashed or not; a manifest field)."""
    manifest = json.loads((signed / "manifest.json").read_text())
    names = [*manifest["files"], "manifest.json", "manifest.sig"]
    ops = ("garbage", "truncate", "flip") if quick else tuple(OPS)
    made = []
    for name in names:
        for op in ops:
            for rehashed in (False, True) if name not in ("manifest.json", "manifest.sig") else (False,):
                kind = f"{name} {op}{' rehashed' if rehashed else ''}"
                folder = copy_bundle(signed, into / f"t{len(made)}")
                OPS[op](folder / name)
                if rehashed:
                    rehash(folder)
                made.append((kind, folder))
    for edit_name, edit in MANIFEST_EDITS.items():
        folder = copy_bundle(signed, into / f"t{len(made)}")
        data = json.loads((folder / "manifest.json").read_text())
        edit(data)
        (folder / "manifest.json").write_text(json.dumps(data))
        if edit_name == "labels swapped":
            (folder / "head/labels.json").write_text(json.dumps(data["labels"]))
            rehash(folder)
        made.append((f"manifest {edit_name}", folder))
    return made


def bundles(bundle_dir: Path, without: Tally, under: Tally, quick: bool) -> None:
    """Each tampered copy loaded and used without a policy (typed errors only) and under one (never loaded)."""
    from device_runtime import Personalizer

    for kind in ("text",) if quick else ("text", "image"):
        with tempfile.TemporaryDirectory() as tmp:
            signed, trust = make_signed(bundle_dir / kind, Path(tmp))
            probe = ["a short text", "another one"] if kind == "text" else np.zeros((2, 16, 16), np.uint8)
            for name, folder in _tampered(signed, Path(tmp) / "t", quick):

                def use(folder: Path = folder, probe: object = probe) -> None:
                    p = Personalizer.load(folder)
                    p.predict(probe)
                    p.drift_report(0.5)

                with _env(None):
                    without.call(f"{kind} {name}", use)
                under.call(
                    f"{kind} {name}",
                    lambda folder=folder, trust=trust: Personalizer.load(folder, runtime=_runtime(trust)),
                    must_refuse=True,
                )


def silent(bundle_dir: Path, tally: Tally) -> None:
    """A signed bundle altered after signing (manifest re-hashed, signature kept), loaded without a policy: never silently."""
    from edgeft.bundle import Bundle

    with tempfile.TemporaryDirectory() as tmp:
        signed, _ = make_signed(bundle_dir / "text", Path(tmp))
        for name, folder in _tampered(signed, Path(tmp) / "t", quick=True):
            if "rehashed" not in name and "labels swapped" not in name:
                continue
            tally.kinds += 1
            with _env(None), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    Bundle.load(folder)
                except EdgeftError:
                    tally.typed += 1
                    continue
                except Exception as e:  # noqa: BLE001
                    tally.fail(name, f"{type(e).__name__}: {e}")
                    continue
            if not any("sign" in str(w.message) for w in caught):
                tally.fail(name, "loaded without a word although its manifest.sig was not checked", "bypasses")
            else:
                tally.accepted += 1


def entry_points(bundle_dir: Path, tally: Tally) -> None:
    """A signed text bundle whose labels 0 and 1 were swapped (labels.json re-hashed, signature kept), given to every
    entry point with ``$EDGEFT_TRUST`` set (and with the policy as an argument where there is one): each must refuse."""
    from device_runtime import Personalizer
    from edgeft.bundle import Bundle

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        signed, trust = make_signed(bundle_dir / "text", tmp)
        swapped = dict(_tampered(signed, tmp / "t", quick=True))["manifest labels swapped"]
        data = tmp / "data.csv"
        labels = json.loads((swapped / "manifest.json").read_text())["labels"]
        data.write_text("text,label\n" + "".join(f"text number {i},{labels[i % 2]}\n" for i in range(8)))
        with _env(None), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = tmp / "state"
            Personalizer.load(swapped).save(state)  # personalized before the policy was set
        python = {
            "Bundle.load env": lambda: Bundle.load(swapped),
            "Bundle.load arg": lambda: Bundle.load(swapped, trust=str(trust)),
            "Bundle.load verify=False env": lambda: Bundle.load(swapped, verify=False),
            "Personalizer.load bundle env": lambda: Personalizer.load(swapped),
            "Personalizer.load bundle runtime": lambda: Personalizer.load(swapped, runtime=_runtime(trust)),
            "Personalizer.from_bundle runtime": lambda: Personalizer.from_bundle(swapped, runtime=_runtime(trust)),
            "Personalizer.load state env": lambda: Personalizer.load(state),
            "Personalizer.load state runtime": lambda: Personalizer.load(state, runtime=_runtime(trust)),
            "service env": lambda: _serve(swapped, tmp / "svc1"),
            "service state env": lambda: _serve(state, state),
            "registry pull env": lambda: _pull(swapped, tmp, None),
            "registry pull arg": lambda: _pull(swapped, tmp, str(trust)),
        }
        for name, action in python.items():
            with _env(trust):
                tally.call(name, action, must_refuse=True)
        commands = {
            "predict": ["predict", str(swapped), "--data", str(data)],
            "evaluate": ["evaluate", str(swapped), "--data", str(data)],
            "drift": ["drift", str(swapped), "--data", str(data)],
            "rollback": ["rollback", str(state), "--to", "0"],
            "personalize": ["personalize", str(swapped), "--data", str(data), "--state", str(tmp / "s2"), "--epochs", "1"],
            "inspect": ["inspect", str(swapped)],
            "predict state": ["predict", str(state), "--data", str(data)],
            "serve": ["serve", str(swapped), "--state", str(tmp / "svc2"), "--port", "18999"],
        }
        for name, argv in commands.items():
            _must_refuse_cli(tally, f"cli {name} env", argv, trust)


def _runtime(trust: Path):
    from edgeft.config import RuntimeConfig

    return RuntimeConfig(trust=str(trust))


class _env:
    """``$EDGEFT_TRUST`` set to ``trust`` (None: unset) inside the block."""

    def __init__(self, trust: Path | None) -> None:
        self.trust = trust

    def __enter__(self) -> None:
        self.saved = os.environ.pop("EDGEFT_TRUST", None)
        if self.trust is not None:
            os.environ["EDGEFT_TRUST"] = str(self.trust)

    def __exit__(self, *exc: object) -> None:
        os.environ.pop("EDGEFT_TRUST", None)
        if self.saved is not None:
            os.environ["EDGEFT_TRUST"] = self.saved


def _must_refuse_cli(tally: Tally, name: str, argv: list[str], trust: Path) -> None:
    tally.kinds += 1
    env = {**os.environ, "EDGEFT_TRUST": str(trust), "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgeft", *argv], check=False, capture_output=True, text=True, timeout=90, env=env
        )
    except subprocess.TimeoutExpired:
        tally.fail(name, "still running after 90 s: it served the tampered bundle", "bypasses")
        return
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode == 0:
        tally.fail(name, "rc 0: the tampered bundle was used", "bypasses")
    elif "Traceback" in done.stderr or len(lines) > 3:
        tally.fail(name, f"rc {done.returncode}, {len(lines)} lines of stderr (a traceback)")
    else:
        tally.typed += 1


def _serve(model: Path, state: Path) -> None:
    """Start the service on ``model`` as ``edgeft serve`` would; a refusal is an edgeft error before it serves."""
    import httpx

    from device_runtime.service import served
    from device_runtime.service.app import create_app
    from device_runtime.service.settings import ServiceSettings

    settings = ServiceSettings.for_model(model, state_dir=state)
    if hasattr(served, "load_served"):
        served.load_served(settings)
    try:
        with serving(create_app(settings)) as url:
            httpx.post(f"{url}/v1/predict", json={"texts": ["a text"]}, timeout=60).raise_for_status()
    except RuntimeError as e:  # uvicorn could not start the app: its lifespan refused the bundle
        raise _Refused(str(e)) from e


class _Refused(EdgeftError):
    """The service did not start (before ``load_served``, a refusal showed only as a failed startup)."""


def _pull(bundle: Path, tmp: Path, trust: str | None) -> None:
    """Publish ``bundle`` as-is on a fresh registry (stored files, bypassing push's own check), then pull it."""
    import shutil

    from edgeft.registry.app import create_app
    from edgeft.registry.client import pull
    from edgeft.registry.settings import RegistrySettings

    root = tmp / f"registry-{random.random()}"
    manifest = json.loads((bundle / "manifest.json").read_text())
    stored = root / manifest["name"] / manifest["version"]
    shutil.copytree(bundle, stored / "bundle")
    (stored / "published.json").write_text(json.dumps({"published": "2026-01-01T00:00:00+00:00"}))
    with serving(create_app(RegistrySettings(root=root, publish_token="t"))) as url:
        pull(f"{manifest['name']}@{manifest['version']}", url, tmp / f"device-{random.random()}", trust=trust)
