"""stats.py (scipy's binomtest underneath) against values computed by hand.

Wilson: centre (p + z^2/2n) / (1 + z^2/n), half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n),
z = 1.959964 (95%) or 1.644854 (90%). At k = 0 the interval is [0, z^2/(n + z^2)], at k = n
[n/(n + z^2), 1]. McNemar: 2 * sum_{i<=min(b,c)} C(b+c, i) / 2^(b+c), capped at 1.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsm8k_rl.evaluation.stats import mcnemar_exact, paired_counts, wilson_interval

# (k, n, conf, low, high), worked out with the formulas above
WILSON_CASES = [
    (0, 10, 0.95, 0.0, 3.841459 / 13.841459),  # z^2/(n+z^2) = 0.277533
    (10, 10, 0.95, 10 / 13.841459, 1.0),  # 0.722467
    (80, 100, 0.95, 0.711171, 0.866633),
    (18, 1319, 0.95, 0.008649, 0.021469),  # SmolLM2-135M's base accuracy on GSM8K test
    (912, 1319, 0.95, 0.665980, 0.715774),  # ~69% on the full GSM8K test set
    (50, 100, 0.90, 0.418848, 0.581152),
]


@pytest.mark.parametrize("k,n,conf,low,high", WILSON_CASES)
def test_wilson_matches_hand_computed(k, n, conf, low, high):
    lo, hi = wilson_interval(k, n, conf)
    assert lo == pytest.approx(low, abs=2e-6)
    assert hi == pytest.approx(high, abs=2e-6)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_estimate_and_stays_in_unit_interval(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)
    # wider at 99% than at 95%
    lo99, hi99 = wilson_interval(k, n, 0.99)
    assert lo99 <= lo and hi99 >= hi


@pytest.mark.parametrize("bad", [(1, 0), (-1, 5), (6, 5)])
def test_wilson_rejects_bad_counts(bad):
    with pytest.raises(ValueError):
        wilson_interval(*bad)


# (b, c, p): by hand from the formula above
MCNEMAR_CASES = [
    (0, 0, 1.0),  # no discordant pairs
    (1, 1, 1.0),  # 2 * 3/4 = 1.5, capped
    (5, 5, 1.0),
    (2, 10, 2 * (1 + 12 + 66) / 4096),  # 0.038574
    (0, 7, 2 / 128),
    (13, 0, 2 / 8192),
]


@pytest.mark.parametrize("b,c,p", MCNEMAR_CASES)
def test_mcnemar_matches_hand_computed(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-9)
    assert mcnemar_exact(c, b) == mcnemar_exact(b, c)  # symmetric in the two models


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_is_a_probability_and_falls_as_the_split_grows_lopsided(b, c):
    p = mcnemar_exact(b, c)
    assert 0.0 < p <= 1.0
    if b < c:  # moving one discordant item from the smaller side to the larger makes it rarer
        assert mcnemar_exact(b - 1, c + 1) <= p if b > 0 else True


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_paired_counts_cross_tab():
    a = [1, 1, 1, 0, 0, 0, 0, 1.0]
    b = [1, 0, 0, 1, 1, 1, 0, 1.0]
    counts = paired_counts(a, b)
    # computed by hand from the lists above
    assert (counts.both_right, counts.only_a, counts.only_b, counts.both_wrong) == (2, 2, 3, 1)
    assert counts.n == len(a)


def test_paired_counts_length_mismatch():
    with pytest.raises(ValueError, match="differ in length"):
        paired_counts([1, 0], [1])
