"""Statistics for accuracy reports, from scipy.

Accuracy on a fixed test set is a binomial proportion: `wilson_interval` gives its confidence
interval (Wilson score interval, which stays inside [0, 1] and behaves near 0 and 1, unlike the
normal "Wald" interval). Two models scored on the *same* items are paired: only the items where
they disagree carry information, and `mcnemar_exact` is the exact (binomial) McNemar test on them.
Both are scipy's `binomtest`; this module only checks the inputs and names the quantities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def wilson_interval(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n trials.

    Args:
        k: successes (0 <= k <= n).
        n: trials (> 0).
        conf: two-sided confidence level.
    Returns:
        (low, high), both in [0, 1].

    >>> lo, hi = wilson_interval(80, 100)
    >>> round(lo, 4), round(hi, 4)
    (0.7112, 0.8666)
    >>> wilson_interval(0, 10)[0]
    0.0
    """
    from scipy.stats import binomtest

    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, n={n}], got {k}")
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf}")
    ci = binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    # exact bounds at the edges (the formula reaches them only up to rounding)
    lo = 0.0 if k == 0 else max(0.0, float(ci.low))
    hi = 1.0 if k == n else min(1.0, float(ci.high))
    return lo, hi


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts.

    Under the null (both models equally accurate) each discordant item is a fair coin flip, so
    the p-value is the two-sided binomial test of b successes in b + c trials at p = 1/2.

    Args:
        b: items only the first model got right.
        c: items only the second model got right.

    >>> mcnemar_exact(0, 0)
    1.0
    >>> round(mcnemar_exact(2, 10), 4)
    0.0386
    """
    from scipy.stats import binomtest

    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return min(1.0, float(binomtest(b, b + c, 0.5).pvalue))


@dataclass(frozen=True)
class PairedCounts:
    """Outcome table of two models on the same items (a = first model, b = second)."""

    both_right: int
    only_a: int  # a right, b wrong: "broken" when a is the base and b the trained model
    only_b: int  # a wrong, b right: "fixed"
    both_wrong: int

    @property
    def n(self) -> int:
        return self.both_right + self.only_a + self.only_b + self.both_wrong


def paired_counts(a_scores: Sequence[float], b_scores: Sequence[float]) -> PairedCounts:
    """Cross-tabulate two equal-length 0/1 score lists (a score counts as right when >= 0.5).

    >>> paired_counts([1, 1, 0, 0], [1, 0, 1, 1])
    PairedCounts(both_right=1, only_a=1, only_b=2, both_wrong=0)
    """
    if len(a_scores) != len(b_scores):
        raise ValueError(f"score lists differ in length: {len(a_scores)} vs {len(b_scores)}")
    counts = [0, 0, 0, 0]
    for a, b in zip(a_scores, b_scores, strict=True):
        ra, rb = a >= 0.5, b >= 0.5
        counts[(0 if ra else 2) + (0 if rb else 1)] += 1
    # index: 0 both right, 1 a only, 2 b only, 3 both wrong
    return PairedCounts(both_right=counts[0], only_a=counts[1], only_b=counts[2], both_wrong=counts[3])


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples of which c are correct (Chen et al. 2021, the
    Codex paper): 1 - C(n-c, k) / C(n, k), the chance that k answers drawn without replacement from
    the n hold at least one correct one. Computed as a product, stable for large n.

    >>> pass_at_k(10, 0, 5), pass_at_k(10, 10, 1), round(pass_at_k(10, 3, 1), 4)
    (0.0, 1.0, 0.3)
    >>> round(pass_at_k(10, 3, 5), 4)   # 1 - C(7,5)/C(10,5) = 1 - 21/252
    0.9167
    """
    import numpy as np

    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_interval(values: Sequence[float], conf: float = 0.95) -> tuple[float, float]:
    """t-interval of the mean of per-problem values (e.g. each problem's share of correct samples).

    >>> lo, hi = mean_interval([0.25, 0.5, 0.75, 0.5])
    >>> round(lo, 3), round(hi, 3)
    (0.175, 0.825)
    """
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        raise ValueError("need at least two values")
    if x.std() == 0:
        return max(0.0, float(x.mean())), min(1.0, float(x.mean()))
    lo, hi = stats.t.interval(conf, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return max(0.0, float(lo)), min(1.0, float(hi))
