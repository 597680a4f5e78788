"""stats.py against scipy's reference implementations (scipy.stats.binomtest)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from gsm8k_rl.stats import mcnemar_exact, paired_counts, wilson_interval

# (k, n, conf): edges (0, n), tiny n, a GSM8K-sized test set, a 90% level.
WILSON_CASES = [
    (0, 1, 0.95),
    (1, 1, 0.95),
    (0, 10, 0.95),
    (10, 10, 0.95),
    (3, 7, 0.95),
    (912, 1319, 0.95),  # ~69% on the full GSM8K test set
    (1100, 1209, 0.95),  # GSM8K-Platinum size
    (50, 100, 0.90),
]


@pytest.mark.parametrize("k,n,conf", WILSON_CASES)
def test_wilson_matches_scipy(k, n, conf):
    ref = binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    lo, hi = wilson_interval(k, n, conf)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_scipy_property(kn):
    k, n = kn
    ref = binomtest(k, n).proportion_ci(method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)


@pytest.mark.parametrize("bad", [(1, 0), (-1, 5), (6, 5)])
def test_wilson_rejects_bad_counts(bad):
    with pytest.raises(ValueError):
        wilson_interval(*bad)


# (b, c): no discordant pairs, symmetric, lopsided, one-sided extreme, large and nearly balanced.
MCNEMAR_CASES = [(0, 0), (5, 5), (2, 10), (0, 7), (13, 0), (60, 85), (300, 301)]


@pytest.mark.parametrize("b,c", MCNEMAR_CASES)
def test_mcnemar_matches_scipy_binomtest(b, c):
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert mcnemar_exact(b, c) == mcnemar_exact(c, b)  # symmetric in the two models


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_property(b, c):
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


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
