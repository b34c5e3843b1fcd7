"""Bad inputs over the Python API, the command line and HTTP: every one must end in a typed error."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tools.attack.common import Tally, serving

SURROGATE = "\ud800"
BAD_TEXTS: list[Any] = [
    [], "one string", b"bytes", None, 5, 3.5, [None], [1, 2], [b"x"], [SURROGATE], [f"a{SURROGATE}b"], [["nested"]],
    np.array([1.0]), {"a": 1}, [float("nan")], [True], np.zeros((2, 2)), [""] * 0, object(), [object()],
]  # fmt: skip
BAD_IMAGES: list[Any] = [
    [], np.zeros((1, 0, 5), np.uint8), np.zeros((1, 5, 0), np.uint8), np.zeros((1, 0, 0, 3), np.uint8),
    np.zeros((2, 8, 8, 2), np.uint8), np.zeros((2, 8, 8, 4), np.uint8), np.zeros((2, 8, 8), np.float32),
    np.zeros((2, 8, 8), np.int16), np.full((2, 8, 8), np.nan), ["text"], [np.zeros((8, 8), np.uint8), np.zeros((9, 9), np.uint8)],
    np.zeros((1, 1, 8, 8, 3), np.uint8), np.zeros(8, np.uint8), "image", None, np.zeros((0, 8, 8), np.uint8),
    [[1, 2], [3]], np.zeros((1, 1, 1), np.uint8).astype(bool), {"x": 1}, np.zeros((2, 8, 8, 3), np.complex64),
]  # fmt: skip
BAD_LABELS: list[Any] = [None, [], ["unknown-label"], [SURROGATE], [1], [None], "tech", ["tech"] * 99, [["tech"]], [""]]
BAD_FIT_ARGS: list[dict[str, Any]] = [
    {"epochs": -1}, {"epochs": "3"}, {"epochs": 0}, {"epochs": 1.5}, {"lr": math.nan}, {"lr": math.inf}, {"lr": 0},
    {"lr": -1}, {"batch_size": 0}, {"batch_size": "8"}, {"validation_fraction": 1.5}, {"seed": -1}, {"accept": "bogus"},
    {"new_labels": "maybe"}, {"max_seconds": -1}, {"patience": 0}, {"unknown_key": 1}, {"replay_ratio": -1},
    {"l2sp": math.nan}, {"max_label_loss": 2}, {"forgetting_level": 0}, {"weight_decay": -1},
]  # fmt: skip
BAD_VERSIONS: list[Any] = [-1, "1", 1.5, 99, None, True, [0], math.nan]
BAD_THRESHOLDS: list[Any] = [0, -1, math.nan, math.inf, "x", True, None, [1]]
BAD_NEW_LABELS: list[Any] = [[""], [None], [SURROGATE], "weather", [1], [["a"]], ["x"] * 50, None]


def api(bundles: Path, tally: Tally) -> None:
    """The Personalizer's public methods, each with every bad value of its arguments."""
    from device_runtime import Personalizer

    text = Personalizer.load(bundles / "text")
    image = Personalizer.load(bundles / "image")
    good_texts, good_labels = ["a short text", "another text"], text.labels[:2]
    good_images, image_labels = np.zeros((2, 16, 16), np.uint8), image.labels[:2]
    for personalizer, bad_inputs, good_y in ((text, BAD_TEXTS, good_labels), (image, BAD_IMAGES, image_labels)):
        kind = personalizer.bundle.manifest.input.modality
        for n, X in enumerate(bad_inputs):
            for method in ("predict", "predict_proba"):
                tally.call(f"api {kind} {method} X#{n}", lambda m=method, X=X, p=personalizer: getattr(p, m)(X))
            for method in ("fit", "partial_fit", "evaluate"):
                tally.call(f"api {kind} {method} X#{n}", lambda m=method, X=X, p=personalizer, y=good_y: getattr(p, m)(X, y))
    for personalizer, X in ((text, good_texts), (image, good_images)):
        kind = personalizer.bundle.manifest.input.modality
        for n, y in enumerate(BAD_LABELS):
            for method in ("fit", "evaluate"):
                tally.call(f"api {kind} {method} y#{n}", lambda m=method, y=y, p=personalizer, X=X: getattr(p, m)(X, y))
            tally.call(f"api {kind} fit add y#{n}", lambda y=y, p=personalizer, X=X: p.fit(X, y, new_labels="add", epochs=1))
    for n, kwargs in enumerate(BAD_FIT_ARGS):
        tally.call(f"api fit {kwargs}", lambda kw=kwargs: text.fit(good_texts, good_labels, **kw))
        tally.call(f"api partial_fit {kwargs}", lambda kw=kwargs: text.partial_fit(good_texts, good_labels, **kw))
    for v in BAD_VERSIONS:
        tally.call(f"api rollback {v!r}", lambda v=v: text.rollback(v))
        tally.call(f"api pin {v!r}", lambda v=v: text.pin(v))
    for t in BAD_THRESHOLDS:
        tally.call(f"api drift_report {t!r}", lambda t=t: text.drift_report(t))
    for labels in BAD_NEW_LABELS:
        tally.call(
            f"api add_labels {labels!r}"[:60], lambda labels=labels: Personalizer.load(bundles / "text").add_labels(labels)
        )
    with tempfile.TemporaryDirectory() as tmp:
        for where in (bundles / "text", Path(tmp) / "file", Path("/proc/edgeft-state"), Path(tmp) / "a\0b"):
            if where.name == "file":
                where.write_text("x")
            tally.call(f"api save {where}", lambda where=where: text.save(where))
        for path in (Path(tmp) / "missing", Path(tmp) / "file", "", Path("/proc/self"), 5, None):
            tally.call(f"api load {path!r}", lambda path=path: Personalizer.load(path))


def cli(bundles: Path, tally: Tally) -> None:
    """``edgeft`` commands with bad files and values: rc 1 or 2 and one line, never a traceback."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {
            "surrogate-label.jsonl": json.dumps({"text": "a text", "label": SURROGATE}) + "\n",
            "surrogate-text.jsonl": json.dumps({"text": SURROGATE, "label": "tech"}) + "\n",
            "not-utf8.csv": b"text,label\n\xff\xfe,tech\n",
            "no-label.csv": "text\nhello\n",
            "deep.jsonl": "[" * 100_000 + "\n",
            "empty.csv": "",
            "list.jsonl": "[1, 2]\n",
            "pickle.npz": b"PK\x03\x04garbage",
            "ok.csv": "text,label\nhello,tech\nworld,sport\n",
        }
        for name, content in files.items():
            (tmp / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        text = str(bundles / "text")
        runs = [
            ["personalize", text, "--data", str(tmp / "surrogate-label.jsonl"), "--state", str(tmp / "s"), "--new-labels", "add"],
            ["personalize", text, "--data", str(tmp / "surrogate-text.jsonl"), "--state", str(tmp / "s")],
            ["personalize", text, "--data", str(tmp / "ok.csv"), "--state", str(tmp / "s"), "--epochs", "-3"],
            ["personalize", text, "--data", str(tmp / "ok.csv"), "--state", str(tmp / "s"), "--lr", "nan"],
            ["predict", text, "--data", str(tmp / "not-utf8.csv")],
            ["predict", text, "--data", str(tmp / "deep.jsonl")],
            ["predict", text, "--data", str(tmp / "empty.csv")],
            ["predict", text, "--data", str(tmp / "list.jsonl")],
            ["predict", text, "--data", str(tmp / "pickle.npz")],
            ["predict", text, "--data", str(tmp / "missing.csv")],
            ["predict", str(tmp), "--data", str(tmp / "ok.csv")],
            ["evaluate", text, "--data", str(tmp / "no-label.csv")],
            ["evaluate", text, "--data", str(tmp / "ok.csv")],
            ["drift", text, "--threshold", "-1"],
            ["drift", text, "--window", "0"],
            ["rollback", text, "--to", "1"],
            ["rollback", str(tmp / "missing"), "--to", "-1"],
            ["inspect", str(tmp)],
            ["serve", text, "--port", "99999"],
            ["serve", text, "--port", "-1"],
            ["registry", "--root", str(tmp / "r"), "--port", "70000"],
            ["pull", "../etc", "--registry", "http://127.0.0.1:9", "--into", str(tmp / "d")],
            ["pull", "x", "--registry", "http://127.0.0.1:9", "--into", str(tmp / "d")],
            ["push", str(tmp), "--registry", "http://127.0.0.1:9"],
            ["predict", text, "--data", str(tmp / "ok.csv"), "--trust", str(tmp / "missing-trust.json")],
        ]
        for argv in runs:
            _cli(tally, argv)


def _cli(tally: Tally, argv: list[str]) -> None:
    tally.kinds += 1
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgeft", *argv], check=False, capture_output=True, text=True, timeout=120, env=env
        )
    except subprocess.TimeoutExpired:
        tally.fail(f"cli {' '.join(argv[:2])}", "timed out (a server started on a bad port?)")
        return
    if "Traceback" in done.stderr or done.returncode not in (0, 1, 2):
        tally.fail(f"cli {' '.join(argv)}", f"rc {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    elif done.returncode == 0:
        tally.accepted += 1
    else:
        tally.typed += 1


def _bodies_predict() -> list[tuple[str, Any]]:
    bodies: list[tuple[str, Any]] = [
        ("texts empty", {"texts": []}), ("texts null", {"texts": None}), ("texts number", {"texts": [1]}),
        ("texts surrogate", {"texts": [SURROGATE]}), ("texts and images", {"texts": ["a"], "images": []}),
        ("texts huge", {"texts": ["x" * 20_000]}), ("texts many", {"texts": ["x"] * 100}), ("nothing", {}),
        ("unknown field", {"texts": ["a"], "x": 1}), ("probabilities string", {"texts": ["a"], "probabilities": "yes"}),
    ]  # fmt: skip
    shapes = [
        [-2, -2],
        [0, 5],
        [5, 0],
        [0, 0],
        [1, 1, 0],
        [2, 2, 2],
        [2, 2, 4],
        [-1],
        [1],
        [1, 1, 1, 1],
        [2**40, 2**40],
        [10**30, 1],
    ]
    for shape in shapes:
        size = max(0, min(int(np.prod([max(s, 0) for s in shape], dtype=object)), 64))
        bodies.append((f"image shape {shape} data", {"images": [{"shape": shape, "data": [0] * size}]}))
        bodies.append((f"image shape {shape} base64", {"images": [{"shape": shape, "base64": "AAAA"}]}))
    bodies += [
        ("image data 256", {"images": [{"shape": [1, 2], "data": [0, 256]}]}),
        ("image data -1", {"images": [{"shape": [1, 2], "data": [0, -1]}]}),
        ("image base64 bad", {"images": [{"shape": [1, 2], "base64": "!!"}]}),
        ("image both", {"images": [{"shape": [1, 1], "data": [0], "base64": "AA=="}]}),
        ("image neither", {"images": [{"shape": [1, 1]}]}),
        ("image float shape", {"images": [{"shape": [1.5, 2], "data": [0, 0]}]}),
    ]
    return bodies


def _bodies_other() -> list[tuple[str, str, str, Any]]:
    examples = [
        ("unknown label", {"examples": [{"text": "a", "label": "no-such-label"}]}),
        ("surrogate label", {"examples": [{"text": "a", "label": SURROGATE}]}),
        ("surrogate label add", {"examples": [{"text": "a", "label": SURROGATE}], "new_labels": "add"}),
        ("surrogate text", {"examples": [{"text": SURROGATE, "label": "x"}]}),
        ("empty text", {"examples": [{"text": "", "label": "x"}]}),
        ("no examples", {"examples": []}), ("label number", {"examples": [{"text": "a", "label": 1}]}),
        ("too many", {"examples": [{"text": "a", "label": "x"}] * 1001}), ("new_labels bogus", {"examples": [], "new_labels": "z"}),
    ]  # fmt: skip
    calls: list[tuple[str, str, str, Any]] = [("examples " + k, "POST", "/v1/examples", b) for k, b in examples]
    personalize = [{"epochs": -1}, {"epochs": 10**9}, {"lr": 0}, {"lr": "nan"}, {"seed": -1}, {"mode": "x"}, {"x": 1},
                   {"validation_fraction": 1}, {"new_labels": "x"}, {"accept": "x"}, {"batch_size": 0}, []]  # fmt: skip
    calls += [(f"personalize {b}", "POST", "/v1/personalize", b) for b in personalize]
    urls = ["http://127.0.0.1:9/a b", "http://127.0.0.1:99999/", "http://localhost:x/", "ftp://127.0.0.1/", "http://example.com/",
            "http://127.0.0.1/\u00e9", "http://127.0.0.1/\n", "", "http://", "javascript:alert(1)", f"http://127.0.0.1/{SURROGATE}",
            "http://[::1/", "http://127.0.0.1:-1/", "file:///etc/passwd", "http://user@127.0.0.1.evil.com/"]  # fmt: skip
    calls += [(f"webhook {u!r}", "PUT", "/v1/drift/webhook", {"url": u}) for u in urls]
    calls += [(f"rollback {v!r}", "POST", "/v1/rollback", {"to_version": v}) for v in (-1, 99, "x", 1.5, None)]
    for path in ("/v1/jobs/x", "/v1/jobs/" + "a" * 5000, "/v1/drift/events?after=-1", "/v1/drift/events?after=x",
                 "/v1/drift?threshold=0", "/v1/drift?threshold=nan", "/v1/drift?threshold=inf", "/v1/examples?label="):  # fmt: skip
        calls.append((f"GET {path[:40]}", "DELETE" if path.startswith("/v1/examples") else "GET", path, None))
    return calls


REFUSE = ("unknown label", "surrogate", "webhook", "image shape", "empty", "too many")  # kinds that must never be answered 2xx


def http(bundles: Path, tally: Tally) -> None:
    """Both modalities' services and the registry, on generated bad requests."""
    from device_runtime.service.app import create_app
    from device_runtime.service.settings import ServiceSettings

    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("text", "image"):
            settings = ServiceSettings.for_model(bundles / kind, state_dir=Path(tmp) / kind)
            with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=120) as client:
                for name, body in _bodies_predict():
                    _http(tally, client, f"{kind} predict {name}", "POST", "/v1/predict", body)
                for name, method, path, body in _bodies_other():
                    _http(tally, client, f"{kind} {name}", method, path, body)
                for name, raw in (("not json", b"{"), ("deep", b"[" * 100_000), ("surrogate escape", b'{"texts": ["\\udc00"]}')):
                    for path in ("/v1/predict", "/v1/examples", "/v1/personalize", "/v1/drift/webhook", "/v1/rollback"):
                        method = "PUT" if path.endswith("webhook") else "POST"
                        _http(tally, client, f"{kind} {name} {path}", method, path, raw)
        _registry(Path(tmp), tally)


def _http(tally: Tally, client: httpx.Client, kind: str, method: str, path: str, body: Any) -> None:
    tally.kinds += 1
    content = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode("utf-8", "surrogatepass")
    try:
        response = client.request(method, path, content=content, headers={"content-type": "application/json"})
    except httpx.TransportError as e:  # the server dropped the connection: no answer at all is worse than a 500
        tally.fail(kind, f"no answer: {type(e).__name__}: {e}")
        return
    try:
        parsed = response.json() if response.content else {}
    except ValueError:
        parsed = None
    documented = response.status_code < 400 or (isinstance(parsed, dict) and {"error", "detail"} <= set(parsed))
    if response.status_code >= 500 or not documented:
        tally.fail(kind, f"{response.status_code} {response.text[:150]}")
    elif response.status_code < 400:
        tally.accepted += 1
        if any(word in kind for word in REFUSE):
            tally.fail(kind, f"accepted: {response.status_code} {response.text[:100]}", "bypasses")
    else:
        tally.typed += 1


def _registry(tmp: Path, tally: Tally) -> None:
    """Registry requests with unsafe names, paths and uploads, among them a tar member 2,100 folders deep."""
    import io
    import tarfile

    from edgeft.registry.app import create_app
    from edgeft.registry.settings import RegistrySettings

    token = "attack-token"
    uploads = {}
    for name, members in (("deep", ["/".join(["d"] * 2100) + "/f"]), ("dotdot", ["../x"]), ("abs", ["/etc/x"]), ("ok-empty", [])):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for member in members:
                info = tarfile.TarInfo(member)
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
        uploads[name] = buffer.getvalue()
    uploads["garbage"] = b"not a tar at all"
    app = create_app(RegistrySettings(root=tmp / "registry", publish_token=token))
    with serving(app) as url, httpx.Client(base_url=url, timeout=120, headers={"authorization": f"Bearer {token}"}) as client:
        for name, data in uploads.items():
            _http(tally, client, f"registry upload {name}", "PUT", "/v1/bundles/b/versions/1.0.0", data)
        deep = "/".join(["d"] * 2100)
        for path in (f"/v1/bundles/b/versions/1.0.0/files/{deep}", "/v1/bundles/..%2F..", "/v1/bundles/b/versions/%00/manifest",
                         "/v1/bundles/" + "x" * 5000, "/v1/bundles/b/versions/1.0.0/files/%2Fetc%2Fpasswd"):  # fmt: skip
            _http(tally, client, f"registry GET {path[:50]}", "GET", path, None)
