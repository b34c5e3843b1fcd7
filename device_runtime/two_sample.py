"""A kernel two-sample test with an exact level: MMD with a permutation null, numpy only.

The statistic is the (biased) squared maximum mean discrepancy between two
samples under a Gaussian kernel (Gretton, Borgwardt, Rasch, Schölkopf and
Smola, "A Kernel Two-Sample Test", JMLR 13, 2012). Its null distribution is
not assumed but drawn: the pooled sample is split at random ``permutations``
times and the p-value is ``(1 + #{permuted >= observed}) / (1 + permutations)``.
When the two samples come from one distribution (more precisely, when the
pooled sample is exchangeable), ``P(p <= level) <= level`` holds exactly, for
any sample sizes and any number of permutations (Lehmann and Romano,
"Testing Statistical Hypotheses", 3rd ed., 2005, Theorem 15.2.1). The kernel's
bandwidth is the median pairwise distance of the pooled sample, which does not
depend on the split, so choosing it from the data keeps the level exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TwoSampleResult:
    """The outcome of one two-sample test."""

    statistic: float  # squared MMD between the two samples
    p_value: float  # permutation p-value, in (0, 1]
    level: float  # the false-alarm rate the test was run at
    rejected: bool  # p_value <= level: the samples differ
    permutations: int
    bandwidth: float  # the Gaussian kernel's width (median pairwise distance)

    def to_dict(self) -> dict[str, float | int | bool | str]:
        return {"method": "mmd_permutation", **dataclasses.asdict(self)}


def mmd_permutation_test(
    x: np.ndarray,
    y: np.ndarray,
    *,
    level: float = 0.01,
    permutations: int = 500,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> TwoSampleResult:
    """Do ``x`` and ``y`` come from the same distribution? Rejects with probability at most ``level`` if so.

    Args:
        x: the first sample, shape (m, d) (e.g. the device's recent window).
        y: the second sample, shape (n, d) (e.g. the bundle's reference sample).
        level: the false-alarm rate: the chance of rejecting two samples of one distribution.
        permutations: random splits of the pooled sample that draw the null distribution;
            the smallest p-value possible is ``1 / (permutations + 1)``.
        seed: fixes the random splits, so a report can be repeated exactly.
        strata: a group for each row, ``x``'s then ``y``'s (e.g. its label). Rows are exchanged only within
            their group, and every group weighs the same in both samples: two samples that hold the groups in
            other proportions are not told apart by those proportions. The level stays exact where, within each
            group, the two samples come from one distribution.

    Returns:
        The statistic, the p-value and the decision.

    Raises:
        ValueError: a group has rows in only one of the samples.
    """
    pooled = np.concatenate([np.asarray(x, np.float64), np.asarray(y, np.float64)])
    m, total = len(x), len(pooled)
    squared = _squared_distances(pooled)
    bandwidth = float(np.sqrt(np.median(squared[np.triu_indices(total, k=1)])))
    kernel = np.exp(-squared / (2 * max(bandwidth, 1e-12) ** 2))
    groups = np.zeros(total, np.int64) if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1]
    first = np.arange(total) < m
    # Column 0 is the observed split; each other column a random one. A column's statistic is w' K w, with
    # weights 1/(G m_g) on the first sample's rows of group g and -1/(G n_g) on the second's: MMD^2 as one matrix product.
    order = _shuffled_within(groups, permutations, np.random.default_rng(seed))
    x_weight, y_weight = _group_weights(groups, first)
    weights = np.where(first[order], x_weight[:, None], y_weight[:, None])
    statistics = (weights * (kernel @ weights)).sum(axis=0)
    observed = statistics[0]
    # A small tolerance: permutations that tie with the observed split must count as ties despite rounding.
    exceed = int(np.count_nonzero(statistics[1:] >= observed - 1e-12 * max(abs(observed), 1.0)))
    p_value = (1 + exceed) / (1 + permutations)
    return TwoSampleResult(float(observed), p_value, level, p_value <= level, permutations, bandwidth)


def _shuffled_within(groups: np.ndarray, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Column 0 the rows in order, each of ``permutations`` more columns them shuffled within their group."""
    total = len(groups)
    order = np.broadcast_to(np.arange(total)[:, None], (total, permutations + 1)).copy()
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        order[rows, 1:] = rng.permuted(np.broadcast_to(rows, (permutations, len(rows))), axis=1).T
    return order


def _group_weights(groups: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's weight were it in the first sample (1/(G m_g)) and in the second (-1/(G n_g))."""
    n_groups = int(groups.max()) + 1
    in_first = np.bincount(groups[first], minlength=n_groups)
    in_second = np.bincount(groups[~first], minlength=n_groups)
    if (in_first == 0).any() or (in_second == 0).any():
        raise ValueError("every stratum needs rows in both samples")
    return 1.0 / (n_groups * in_first[groups]), -1.0 / (n_groups * in_second[groups])


def _squared_distances(a: np.ndarray) -> np.ndarray:
    norms = (a * a).sum(axis=1)
    return np.maximum(norms[:, None] + norms[None, :] - 2 * a @ a.T, 0.0)
