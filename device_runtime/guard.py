"""The guard: is a newly trained head better than the current one, on rows neither of them trained on?

Both heads are judged on the same rows, so the comparison is paired: the
bundle's guard rows (held-out server examples of every label, which no head
trained on) and the user's validation split. Per label and over all rows of
each source, a loss counts only where it is both larger than ``max_label_loss``
and more than chance explains: the rows the current head got right and the new
one wrong must outnumber those it gained beyond McNemar's exact one-sided test
at ``forgetting_level``. With 1 to 6 rows a label, one row is 15 to 100 points
of recall; the test is what keeps one row from refusing a head (docs/device.md).

Where the raw new head loses ground, the heads between it and the current one
(their weights interpolated, as WiSE-FT does: Wortsman et al., "Robust
fine-tuning of zero-shot models", CVPR 2022) are tried too; the best that keeps
every label ships. A head with a non-finite parameter or score never ships.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from device_runtime.engines import HeadEngine
from device_runtime.head_graph import output_layer
from device_runtime.input_shift import ShiftCheck
from device_runtime.scoring import batched_logits, is_better
from edgeft.config import Accept, Metric, TrainConfig
from edgeft.metrics import cross_entropy

# Shares of the new head in the family tried, from the raw new head down (0 would be the current head).
# Chosen on the guard benchmark (docs/guard): 0.5 and below rarely won, but cost one scoring pass each.
MIX_WEIGHTS = (1.0, 0.75, 0.5, 0.25)
GUARD, USER = "guard", "user"  # where an evidence row comes from
ALL = "all"  # the verdict over every row of a source


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The rows both heads are judged on: features, label indices and each row's source."""

    features: np.ndarray
    targets: np.ndarray
    sources: np.ndarray  # GUARD or USER per row
    described: str  # what the rows are, for the report ("5 guard rows and 8 of the user's validation rows")
    shift: ShiftCheck | None = None  # the input-shift check that chose the guard rows; None: no guard rows shipped

    def report_fields(self) -> dict[str, Any]:
        """The FitReport's account of these rows: described, guard rows counted, the input-shift check."""
        return {
            "validated_on": self.described,
            "guard_examples": int(np.sum(self.sources == GUARD)),
            "shift": self.shift.to_dict() if self.shift else None,
        }


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One label (or "all") on the rows of one source: both heads' recall and the rows that moved."""

    source: str  # GUARD: held-out server rows; USER: the user's validation rows
    label: str  # a label's name, or "all" for every row of the source
    rows: int
    current: float  # recall (accuracy for "all") of the current head
    new: float
    lost: int  # rows the current head got right and the new one wrong
    gained: int
    p: float  # chance of losing at least ``lost`` of the ``lost + gained`` rows that moved, were the heads equal
    kept: bool  # False: a loss over the margin that chance does not explain

    def shown(self) -> str:
        return (
            f"{self.label} on {self.source} rows {self.current:.2f} -> {self.new:.2f} "
            f"({self.lost} rows lost, {self.gained} gained, p={self.p:.3f})"
        )


@dataclasses.dataclass(frozen=True)
class Member:
    """One head of the family: ``weight`` of the new head's parameters, 1 - ``weight`` of the current one's."""

    weight: float
    loss: float  # mean cross-entropy over every evidence row
    accuracy: float
    finite: bool  # every parameter and logit is finite
    verdicts: tuple[Verdict, ...]
    source_loss: dict[str, float] = dataclasses.field(default_factory=dict)  # mean cross-entropy on each source's rows

    @property
    def lost(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.kept]

    def metric(self, metric: Metric) -> float:
        return self.loss if metric is Metric.LOSS else self.accuracy


@dataclasses.dataclass(frozen=True)
class Decision:
    """The guard's verdict: which head ships (if any), why, and every member it weighed."""

    accepted: bool
    reason: str
    chosen: Member | None  # the member that ships; None where the current head is kept
    current: Member  # the current head on the same rows
    members: tuple[Member, ...]


def sign_test(lost: int, gained: int) -> float:
    """P(at least ``lost`` of the ``lost + gained`` rows that moved go against the new head, by chance alone)."""
    n = lost + gained
    return float(sum(math.comb(n, k) for k in range(lost, n + 1)) / 2**n)


def verdicts(
    evidence: Evidence, current: np.ndarray, new: np.ndarray, names: list[str], margin: float, level: float
) -> list[Verdict]:
    """Per label and over all rows, for each source: does the new head (predictions ``new``) lose ground?"""
    out = []
    for source in (GUARD, USER):
        rows = evidence.sources == source
        if not rows.any():
            continue
        targets = evidence.targets[rows]
        for label in np.unique(targets):
            out.append(_verdict(source, names[label], targets == label, targets, current[rows], new[rows], margin, level))
        out.append(_verdict(source, ALL, np.ones(len(targets), bool), targets, current[rows], new[rows], margin, level))
    return out


def _verdict(
    source: str,
    label: str,
    rows: np.ndarray,
    targets: np.ndarray,
    current: np.ndarray,
    new: np.ndarray,
    margin: float,
    level: float,
) -> Verdict:
    was, now = current[rows] == targets[rows], new[rows] == targets[rows]
    lost, gained = int(np.sum(was & ~now)), int(np.sum(~was & now))
    before, after = float(was.mean()), float(now.mean())
    p = sign_test(lost, gained)
    return Verdict(
        source, label, int(rows.sum()), before, after, lost, gained, p, not (after < before - margin - 1e-9 and p < level)
    )


def mixed(
    current: dict[str, np.ndarray], new: dict[str, np.ndarray], weight: float, own_slots: list[int]
) -> dict[str, np.ndarray]:
    """``weight`` of ``new``'s parameters and the rest of ``current``'s; output ``own_slots`` (labels claimed in
    this run, which the current head never learned) are the new head's alone."""
    out = {name: (1 - weight) * current[name] + weight * new[name] for name in new}
    if own_slots:
        for name in output_layer(list(new)):
            out[name][own_slots] = new[name][own_slots]
    return out


def judge(
    engine: HeadEngine,
    current: dict[str, np.ndarray],
    evidence: Evidence,
    current_logits: np.ndarray,
    names: list[str],
    config: TrainConfig,
    own_slots: list[int],
) -> Decision:
    """Decide between the current head (``current``, whose logits on the evidence are ``current_logits``) and the
    head ``engine`` holds; ``engine`` ends holding the head that ships, or the new head where none does.

    The raw new head is tried first, then its mixes with the current head (:data:`MIX_WEIGHTS`); the first best
    that keeps every label ships, if it is better than the current head on ``config.metric`` over every evidence row.
    ``accept="always"`` ships the raw new head unless it is not finite.
    """
    new = engine.parameters()
    now = _member(0.0, current_logits, current_logits, current, evidence, names, config, check=False)
    weights = MIX_WEIGHTS[:1] if config.accept is Accept.ALWAYS else MIX_WEIGHTS
    members = []
    for weight in weights:
        engine.set_parameters(mixed(current, new, weight, own_slots))
        logits = batched_logits(engine, evidence.features, config.batch_size, len(names))
        members.append(_member(weight, logits, current_logits, engine.parameters(), evidence, names, config))
    chosen = _choose(members, now, config)
    engine.set_parameters(mixed(current, new, chosen.weight, own_slots) if chosen else new)
    return Decision(chosen is not None, _reason(chosen, members, now, config, evidence.described), chosen, now, tuple(members))


def _member(
    weight: float,
    logits: np.ndarray,
    current_logits: np.ndarray,
    parameters: dict[str, np.ndarray],
    evidence: Evidence,
    names: list[str],
    config: TrainConfig,
    check: bool = True,
) -> Member:
    finite = bool(np.isfinite(logits).all()) and all(np.isfinite(v).all() for v in parameters.values())
    if not finite:
        return Member(weight, float("nan"), float("nan"), False, ())
    predicted, before = logits.argmax(axis=1), current_logits.argmax(axis=1)
    found = verdicts(evidence, before, predicted, names, config.max_label_loss, config.forgetting_level) if check else []
    loss = cross_entropy(logits, evidence.targets)
    accuracy = float(np.mean(predicted == evidence.targets))
    by_source = {
        source: cross_entropy(logits[evidence.sources == source], evidence.targets[evidence.sources == source])
        for source in (GUARD, USER)
        if (evidence.sources == source).any()
    }
    return Member(weight, loss, accuracy, math.isfinite(loss), tuple(found), by_source)


def _choose(members: list[Member], current: Member, config: TrainConfig) -> Member | None:
    """The best finite member that keeps every label (the first of equals: the most of the new head), if better.

    Mixes are tried only where the raw new head loses some labels: one that loses all the rows of a source
    together (e.g. labels the user flipped) is a worse head, and a mix with less of it only hides that.
    """
    if not members[0].finite:  # a diverged run: its mixes are not what the user trained
        return None
    if config.accept is Accept.ALWAYS:
        return members[0]
    if any(v.label == ALL for v in members[0].lost):
        return None
    best = None
    for member in members:
        if (
            member.finite
            and not member.lost
            and (best is None or is_better(config.metric, member.metric(config.metric), best.metric(config.metric)))
        ):
            best = member
    if best is None or not is_better(config.metric, best.metric(config.metric), current.metric(config.metric)):
        return None
    return best


def _reason(chosen: Member | None, members: list[Member], current: Member, config: TrainConfig, described: str) -> str:
    """One sentence for the report: what shipped or why nothing did, with the figures."""
    metric = config.metric
    raw = members[0]
    if not raw.finite:
        return "the new head is not finite (training diverged: lower lr); it is never accepted, whatever accept says; the current head is kept"

    def versus(m: Member) -> str:
        return f"{metric.value} {m.metric(metric):.4f} (new) vs {current.metric(metric):.4f} (current) on {described}"

    if config.accept is Accept.ALWAYS:
        return f'accept="always": replaced the current head; {versus(raw)}'
    losses = "; ".join(v.shown() for v in raw.lost)
    if chosen is None:
        why = f"it loses ground: {losses}" if raw.lost else f"it is not better: {versus(raw)}"
        tried = f", nor is any mix of it with the current head (weights {', '.join(f'{m.weight:g}' for m in members[1:])})"
        overall = any(v.label == ALL for v in raw.lost)
        return f"the new head is refused: {why}{tried if len(members) > 1 and not overall else ''}; the current head is kept"
    if chosen is raw:
        return f"the new head is better and keeps every label: {versus(raw)}"
    lost = f"loses ground ({losses})" if raw.lost else f"is not the best ({versus(raw)})"
    return (
        f"the new head {lost}, so its mix with the current head at weight {chosen.weight:g} ships: it keeps every label "
        f"and is better: {versus(chosen)}"
    )
