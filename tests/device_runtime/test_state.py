"""Saved state: exact resume, bound to its bundle, unchanged by a failed save, loadable after any crash."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft.errors import StateError

REPO = Path(__file__).resolve().parents[2]


def _python(script: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], env=env, text=True, **kwargs)


def test_save_then_load_resumes_training_exactly(make_personalizer, user, tmp_path):
    texts, labels = user
    p = make_personalizer().fit(texts[:40], labels[:40], accept="always")
    p.save(tmp_path / "state")
    q = Personalizer.load(tmp_path / "state", runtime=p.runtime)  # the same feature cache: the same features
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(q.head_parameters()[name], value)
    assert q.report_ == p.report_ and q.config == p.config
    p.partial_fit(texts[40:], labels[40:], epochs=3, accept="always")
    q.partial_fit(texts[40:], labels[40:], epochs=3, accept="always")  # AdamW's moments came back too
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(q.head_parameters()[name], value)


def test_numpy_engine_state_saves_and_loads_too(make_personalizer, user, tmp_path):
    p = make_personalizer(engine="numpy").fit(*user)
    p.save(tmp_path / "state")
    q = Personalizer.load(tmp_path / "state", runtime=p.runtime)
    assert q.engine.value == "numpy" and q.current_version == 1
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(q.head_parameters()[name], value)


def test_a_state_from_another_bundle_is_refused(make_personalizer, user, bundle_copy, tmp_path):
    from edgeft.layout import MANIFEST

    make_personalizer().fit(*user).save(tmp_path / "state")
    manifest = json.loads((bundle_copy / MANIFEST).read_text())
    manifest["version"] = "2.0.0"
    manifest["files"]["tokenizer.json"]["sha256"] = "0" * 64
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest))
    from edgeft.bundle import Bundle

    with pytest.raises(StateError, match="saved for bundle minilm-bbc@1.0.0 .* but the bundle given is minilm-bbc@2.0.0"):
        Personalizer.load(tmp_path / "state", bundle=Bundle.load(bundle_copy, verify=False))


def test_a_damaged_state_raises_a_state_error(make_personalizer, user, tmp_path):
    make_personalizer().fit(*user).save(tmp_path / "state")
    record = json.loads((tmp_path / "state" / "state.json").read_text())
    (tmp_path / "state" / record["optimizer"]["file"]).write_bytes(b"garbage")
    with pytest.raises(StateError, match="missing or damaged"):
        Personalizer.load(tmp_path / "state")
    (tmp_path / "state" / "state.json").write_text("{not json")
    with pytest.raises(StateError, match="not valid JSON"):
        Personalizer.load(tmp_path / "state")
    with pytest.raises(StateError, match="No saved state"):
        Personalizer.load(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("versions"), "versions: Field required"),
        (lambda r: r.update(current=99), r"current is 99 but the versions are \[0, 1\]"),
        (lambda r: r["versions"][1].pop("sha256"), "versions.1.sha256: Field required"),
    ],
    ids=["a key missing", "no such current version", "a version entry cut short"],
)
def test_a_malformed_state_record_raises_a_state_error(make_personalizer, user, tmp_path, change, message):
    make_personalizer().fit(*user).save(tmp_path / "state")
    record = json.loads((tmp_path / "state" / "state.json").read_text())
    change(record)
    (tmp_path / "state" / "state.json").write_text(json.dumps(record))
    with pytest.raises(StateError, match=message):
        Personalizer.load(tmp_path / "state")


def test_saving_over_the_state_of_another_bundle_is_refused(make_personalizer, user, tmp_path):
    p = make_personalizer().fit(*user)
    p.save(tmp_path / "state")
    record = json.loads((tmp_path / "state" / "state.json").read_text())
    record["bundle"].update(fingerprint="0" * 16, name="other", version="9.9.9")  # as another bundle's save leaves it
    (tmp_path / "state" / "state.json").write_text(json.dumps(record))
    before = {f.name: f.read_bytes() for f in (tmp_path / "state").iterdir()}
    with pytest.raises(
        StateError, match="holds the state of bundle other@9.9.9, not of minilm-bbc@1.0.0; saving would replace it"
    ):
        p.save(tmp_path / "state")
    assert {f.name: f.read_bytes() for f in (tmp_path / "state").iterdir()} == before


# RLIMIT_FSIZE makes every write past the limit fail with EFBIG, as a full disk fails with ENOSPC:
# 1 kB stops the first file written, 12 kB lets the head's .npz through and stops ORT's checkpoint.
@pytest.mark.parametrize("limit", [1024, 12_000], ids=["first file", "optimizer checkpoint"])
def test_a_save_that_hits_a_full_disk_raises_and_leaves_the_state_unchanged(
    make_personalizer, user, tmp_path, feature_cache_dir, limit
):
    state = tmp_path / "state"
    p = make_personalizer().fit(*user)
    p.save(state)
    before = {f.name: f.read_bytes() for f in state.iterdir()}
    child = _python(
        """
        import resource, signal, sys
        from device_runtime import Personalizer
        from edgeft.errors import StateError
        p = Personalizer.load(sys.argv[1])
        p.fit(*__import__("json").load(open(sys.argv[2])), epochs=5, accept="always")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
        try:
            p.save(sys.argv[1])
        except StateError as e:
            print("StateError:", e)
        """,
        str(state),
        str(_dump(user, tmp_path)),
        str(limit),
        stdout=subprocess.PIPE,
    )
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and "StateError: Could not save the state" in out and "unchanged" in out
    assert "onnxruntime_src" not in out, "the user reads why, not ORT's source paths"
    assert {f.name: f.read_bytes() for f in state.iterdir()} == before
    q = Personalizer.load(state)
    assert q.current_version == 1
    for name, value in p.head_parameters().items():
        np.testing.assert_array_equal(q.head_parameters()[name], value)


def _dump(data, folder: Path) -> Path:
    path = folder / "data.json"
    path.write_text(json.dumps([list(data[0]), list(data[1])]))
    return path


PERSONALIZE_FOREVER = """
    import json, sys
    from device_runtime import Personalizer
    from edgeft.config import RuntimeConfig
    bundle, state, data, cache = sys.argv[1:5]
    texts, labels = json.load(open(data))
    runtime = RuntimeConfig(cache_dir=cache)
    try:
        p = Personalizer.load(state, bundle=bundle, runtime=runtime)
    except Exception:
        p = Personalizer.load(bundle, runtime=runtime)
    print("ready", p.current_version, flush=True)
    for i in range(10**6):
        p.fit(texts, labels, epochs=1 + i % 3, accept="always")
        p.save(state)
        print("saved", p.current_version, flush=True)
"""


def test_sigkill_at_random_moments_always_leaves_a_loadable_state(
    make_personalizer, minilm_bundle, user, tmp_path, feature_cache_dir
):
    make_personalizer().transform(user[0])  # features in the shared cache: the child goes straight to training
    state, data = tmp_path / "state", _dump(user, tmp_path)
    rng = random.Random(0)
    saved_before, kills = 0, 12
    started = time.monotonic()
    for _ in range(kills):
        child = _python(
            PERSONALIZE_FOREVER, str(minilm_bundle), str(state), str(data), str(feature_cache_dir), stdout=subprocess.PIPE
        )
        assert child.stdout.readline().startswith("ready")
        time.sleep(rng.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        saved = [int(line.split()[1]) for line in out.splitlines() if line.startswith("saved")]
        if not saved and saved_before == 0:
            continue  # killed before its first save: nothing to load yet
        q = Personalizer.load(state, bundle=minilm_bundle)
        # The state holds the last completed save, or the one in flight when the kill came.
        last = saved[-1] if saved else saved_before
        assert q.current_version in (last, last + 1)
        assert np.isfinite(q.predict_proba(user[0][:4])).all()
        saved_before = q.current_version
    assert saved_before > 0
    assert time.monotonic() - started < 60
