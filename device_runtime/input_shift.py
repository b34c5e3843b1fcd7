"""Do the user's inputs look like the server's? Where they do not, the guard rows of the user's labels stop judging.

The guard (:mod:`device_runtime.guard`) judges a new head on the bundle's
held-out server rows as well as on the user's validation rows. That is fair
while the user's inputs come from the server's distribution. Under a shift (a
watch worn another way round, another microphone), the server rows of a label
no longer look like the user's inputs of it: a head that has learned the user's
signal loses ground on them, and the guard mixes it back or refuses it, though
it is better for every input the user will send.

So before judging, the user's features are tested against the guard rows of the
labels the user gave, with the project's drift test on features (the MMD
permutation test of :mod:`device_runtime.two_sample`), label by label: rows are
exchanged only within a label and every label weighs the same on both sides.
How many examples of each label the user gave is thus not a shift, and neither
are labels swapped among the user's own (the inputs still look like the
server's); the test's level is exact. Where it finds a shift, the user's
validation rows alone decide the labels the user gave, and the guard rows still
decide every label the user gave no examples of.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from device_runtime.replay import ReplaySet
from device_runtime.two_sample import mmd_permutation_test

# The test's false-alarm rate: a user whose inputs are like the server's loses the guard rows of their labels
# this rarely. Checked on the guard and sensor benchmarks (docs/guard, docs/sensors).
SHIFT_LEVEL = 0.01
# Random splits drawing the test's null; the smallest p-value is 1/501.
SHIFT_PERMUTATIONS = 500
# The user's rows per label the test reads (drawn at random): the cost stays bounded for large user sets.
MAX_USER_ROWS_PER_LABEL = 32


@dataclasses.dataclass(frozen=True)
class ShiftCheck:
    """The input-shift check of one run: was it made, on what, and what it found."""

    tested: bool  # False: no guard rows of the user's labels to compare with
    shifted: bool  # the user's inputs differ from the server's: their labels' guard rows were set aside
    p_value: float | None
    level: float
    user_rows: int  # the user's examples the test read
    guard_rows: int  # the guard rows of the user's labels it read
    set_aside: int  # guard rows not judged on (those of the user's labels, where shifted)
    labels: tuple[str, ...]  # the labels tested: the user's that have guard rows

    def shown(self) -> str:
        """One sentence for the report and the CLI."""
        if not self.tested:
            return "input shift not tested (no guard rows of the user's labels)"
        test = f"MMD test, label by label, on {self.user_rows} user and {self.guard_rows} guard rows: p={self.p_value:.3f}"
        if not self.shifted:
            return f"the user's inputs look like the server's ({test} > {self.level:g})"
        return (
            f"the user's inputs differ from the server's ({test} <= {self.level:g}): the user's validation rows decide "
            f"their {len(self.labels)} label(s), and {self.set_aside} guard rows of them were set aside"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "labels": list(self.labels), "reason": self.shown()}


def check_shift(
    features: np.ndarray, targets: np.ndarray, guard: ReplaySet, names: list[str], seed: int, level: float = SHIFT_LEVEL
) -> ShiftCheck:
    """Test the user's ``features`` (label indices ``targets``) against the guard rows of the same labels.

    Args:
        features: the user's examples as the head reads them (no augmented views).
        targets: their label indices.
        guard: the bundle's guard rows.
        names: the labels' names, by index.
        seed: fixes the rows drawn and the permutations, so a run can be repeated exactly.
        level: the test's false-alarm rate.
    """
    common = np.intersect1d(np.unique(targets), np.unique(guard.labels))
    if not len(common):
        return ShiftCheck(False, False, None, level, 0, 0, 0, ())
    rng = np.random.default_rng(seed)
    user = np.concatenate([rng.permutation(np.flatnonzero(targets == label))[:MAX_USER_ROWS_PER_LABEL] for label in common])
    theirs = np.isin(guard.labels, common)
    result = mmd_permutation_test(
        np.asarray(features, np.float64)[user],
        guard.features[theirs],
        level=level,
        permutations=SHIFT_PERMUTATIONS,
        seed=seed,
        strata=np.concatenate([targets[user], guard.labels[theirs]]),
    )
    set_aside = int(theirs.sum()) if result.rejected else 0
    labels = tuple(names[i] for i in common)
    return ShiftCheck(True, result.rejected, result.p_value, level, len(user), int(theirs.sum()), set_aside, labels)


def judged_guard_rows(
    guard: ReplaySet | None, features: np.ndarray, targets: np.ndarray, names: list[str], seed: int
) -> tuple[ReplaySet | None, ShiftCheck | None]:
    """The guard rows a run is judged on (all of them, or under a shift those of labels the user gave none of)
    and the check that chose them; ``(None, None)`` where the bundle ships no guard rows."""
    if guard is None or not len(guard):
        return guard, None
    check = check_shift(features, targets, guard, names, seed)
    if not check.shifted:
        return guard, check
    kept = ~np.isin(guard.labels, np.unique(targets))
    return ReplaySet(guard.features[kept], guard.labels[kept]), check
