"""The guard ships a better head, refuses a worse or diverged one, and keeps the gain by mixing heads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device_runtime import Personalizer
from device_runtime.guard import GUARD, USER, Evidence, judge, verdicts
from device_runtime.head_graph import output_layer
from device_runtime.report import FitReport
from device_runtime.scoring import batched_logits
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.config import TrainConfig
from edgeft.errors import BundleError
from example_data import bbc_news, split_per_class


def _rows(per_label: int, labels: int) -> np.ndarray:
    return np.repeat(np.arange(labels), per_label)


def _evidence(targets: np.ndarray, source: str = GUARD) -> Evidence:
    return Evidence(np.zeros((len(targets), 1), np.float32), targets, np.array([source] * len(targets)), "test rows")


def test_one_row_lost_never_refuses_a_head():
    targets = _rows(1, 5)
    new = targets.copy()
    new[0] = 1  # label a: 1/1 -> 0/1, 100 points of recall on one row
    found = verdicts(_evidence(targets), targets.copy(), new, list("abcde"), margin=0.02, level=0.1)
    assert all(v.kept for v in found)
    assert next(v for v in found if v.label == "a").p == pytest.approx(0.5)


def test_a_label_that_loses_many_rows_is_lost_and_named():
    targets = _rows(16, 3)
    new = targets.copy()
    new[16:24] = 0  # label b: half its rows now predicted as a, none gained
    found = verdicts(_evidence(targets), targets.copy(), new, ["a", "b", "c"], margin=0.02, level=0.1)
    lost = [v for v in found if not v.kept]
    assert [v.label for v in lost] == ["b", "all"] and lost[0].lost == 8 and lost[0].source == GUARD
    assert "b on guard rows 1.00 -> 0.50 (8 rows lost, 0 gained" in lost[0].shown()


def test_losses_spread_over_labels_are_caught_all_together():
    targets = _rows(1, 5)
    new = (targets + 1) % 5  # every guard row lost: one a label (chance), five together (p = 1/32)
    found = verdicts(_evidence(targets), targets.copy(), new, list("abcde"), margin=0.02, level=0.1)
    assert [v.label for v in found if not v.kept] == ["all"]


def test_guard_and_user_rows_are_judged_apart():
    targets = np.concatenate([_rows(4, 2), _rows(4, 2)])
    sources = np.array([GUARD] * 8 + [USER] * 8)
    evidence = Evidence(np.zeros((16, 1), np.float32), targets, sources, "test rows")
    new = targets.copy()
    new[:8] = 1 - targets[:8]  # every guard row lost, every user row kept
    found = verdicts(evidence, targets.copy(), new, ["a", "b"], margin=0.02, level=0.1)
    assert {(v.source, v.label) for v in found if not v.kept} == {(GUARD, "a"), (GUARD, "b"), (GUARD, "all")}
    assert all(v.kept for v in found if v.source == USER)


def test_the_exporter_ships_held_out_guard_rows_counted_and_checksummed(minilm_bundle):
    bundle = Bundle.load(minilm_bundle)
    head = bundle.manifest.head
    assert layout.GUARD in bundle.manifest.files and head.guard_examples == 5  # 1 of the 4 server articles a topic
    with np.load(bundle.file(layout.GUARD)) as guard, np.load(bundle.file(layout.REPLAY)) as replay:
        assert guard["features"].shape == (5, head.in_features) and np.bincount(guard["labels"]).tolist() == [1] * 5
        assert head.replay_examples == len(replay["labels"]) == 15
        shared = (guard["features"][:, None, :] == replay["features"][None, :, :]).all(axis=2)
        assert not shared.any()  # no guard row is a replay row: the device never trains on them


def test_a_tampered_guard_set_is_refused(bundle_copy):
    with np.load(bundle_copy / layout.GUARD) as data:
        arrays = dict(data)
    arrays["labels"] = (arrays["labels"] + 1) % 5
    np.savez(bundle_copy / layout.GUARD, **arrays)
    with pytest.raises(BundleError, match="head/guard.npz does not match its checksum"):
        Bundle.load(bundle_copy)


def test_a_user_covering_every_label_at_20_gets_a_better_head_from_a_tiny_server_bundle(make_personalizer, test_split):
    texts, labels = bbc_news()
    users = split_per_class(texts, labels, [4, 12, 30, 20], seed=0)[3]  # unseen by the bundle and the other splits
    p = make_personalizer()
    shipped = p.score(*test_split)
    p.fit(*users)
    assert p.report_.accepted and p.current_version == 1 and p.report_.guard_examples == 5
    assert p.score(*test_split) >= shipped + 0.02


def test_a_diverged_run_is_refused_even_with_accept_always_and_the_state_loads(bundle_copy, user, tmp_path):
    manifest = json.loads((bundle_copy / layout.MANIFEST).read_text())
    for name in (layout.REPLAY, layout.GUARD):  # a bundle without replay, as the issue found it
        del manifest["files"][name]
        (bundle_copy / name).unlink()
    (bundle_copy / layout.MANIFEST).write_text(json.dumps(manifest))
    p = Personalizer.from_bundle(bundle_copy)
    for accept in ("if_better", "always"):
        p.fit(*user, lr=1e15, epochs=5, accept=accept)
        assert not p.report_.accepted and "not finite" in p.report_.reason and p.current_version == 0
    p.save(tmp_path / "state")
    restored = Personalizer.load(tmp_path / "state", bundle=bundle_copy)
    assert restored.current_version == 0 and restored.report_ == FitReport.from_dict(p.report_.to_dict())
    assert np.isfinite(restored.predict_proba(user[0][:3])).all()


def test_the_family_ships_a_mix_when_the_raw_new_head_forgets_a_label(make_personalizer, user):
    p = make_personalizer()
    shipped = p.head_parameters()
    fitted = make_personalizer().fit(*user, accept="always").head_parameters()
    weight, bias = output_layer(list(fitted))
    forgetful = {k: v.copy() for k, v in fitted.items()}
    forgetful[weight][3] = -shipped[weight][3]  # sports: the new head turns against it
    forgetful[bias][3] = shipped[bias][3]
    engine = p._engine
    guard = p.guard
    evidence = Evidence(
        np.concatenate([guard.features, p.transform(user[0])]),
        np.concatenate([guard.labels, [p.labels.index(v) for v in user[1]]]),
        np.array([GUARD] * len(guard) + [USER] * len(user[0])),
        "guard and user rows",
    )
    current_logits = batched_logits(engine, evidence.features, 32, len(p.labels))
    engine.set_parameters(forgetful)
    decision = judge(engine, shipped, evidence, current_logits, p.labels, TrainConfig(), [])
    raw = decision.members[0]
    assert raw.weight == 1.0 and any(v.label == p.labels[3] for v in raw.lost)
    assert decision.accepted and decision.chosen.weight < 1.0 and not decision.chosen.lost
    assert f"mix with the current head at weight {decision.chosen.weight:g} ships" in decision.reason
