"""Intervals of vilu_sklearn.selective._ppi at every audit size (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta

from vilu_sklearn.selective import estimate_accuracy, estimate_selective_risk


def _draw(rng, acc, n_audit, n_unlab=3000):
    """P(correct) ~ Beta with mean ``acc``; predictions overconfident (p**0.8)."""
    p = rng.beta(4 * acc, 4 * (1 - acc), size=n_audit + n_unlab)
    y = (rng.uniform(size=p.size) < p).astype(int)
    f = p**0.8
    return f[n_audit:], f[:n_audit], y[:n_audit]


def _coverage(acc, n_audit, reps, seed=0):
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        r = estimate_accuracy(*_draw(rng, acc, n_audit), confidence_level=0.9)
        hits += r.low <= acc <= r.high
    return hits / reps


# ------------------------------------------------ defect 2 of issue 18
def test_all_correct_audit_gives_the_exact_interval_not_a_point():
    # 88e3eac: the power-tuning weight was 0 and the interval [1.0, 1.0]
    r = estimate_accuracy(np.full(5000, 0.8), np.full(30, 0.8), np.ones(30, int))
    assert r.interval == "exact" and r.weight == 0.0
    assert r.high == 1.0 and r.low == pytest.approx(0.05 ** (1 / 30))
    assert r.low < r.high


def test_all_wrong_audit_gives_the_exact_interval():
    r = estimate_accuracy(np.full(500, 0.3), np.full(25, 0.3), np.zeros(25, int))
    assert r.low == 0.0 and r.high == pytest.approx(1 - 0.05 ** (1 / 25))


@pytest.mark.parametrize("acc, n_audit", [(0.95, 20), (0.95, 30), (0.99, 200)])
def test_coverage_where_the_normal_approximation_fails(acc, n_audit):
    # 88e3eac covered 62 % / 78 % (95 % accuracy, 20 / 30 labels) at a
    # nominal 90 %; binomial(300, 0.9) < 255 has probability < 1e-3
    assert _coverage(acc, n_audit, reps=300) >= 0.85


def test_selective_risk_coverage_at_a_one_percent_risk():
    # 88e3eac covered 18 % with 200 audit labels at a true risk of 1 %.
    # Accepted (s >= 0.5): P(wrong) = 0.01 exactly; rejected: 0.5.
    hits = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        s = rng.uniform(size=2200)
        y = (rng.uniform(size=s.size) >= np.where(s >= 0.5, 0.01, 0.5)).astype(int)
        p = np.where(s >= 0.5, 0.97, 0.5)  # a rough P(correct)
        r = estimate_selective_risk(
            p[200:], p[:200], y[:200], threshold=0.5, confidence_unlabelled=s[200:],
            confidence_audit=s[:200],
        )  # fmt: skip
        hits += r.low <= 0.01 <= r.high
    assert hits / 300 >= 0.85


# ----------------------------------------------------- property tests
@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(2, 5000),
    share=st.floats(0.0, 1.0),
    level=st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]),
    tune=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_interval_is_never_degenerate(n, share, level, tune, seed):
    rng = np.random.default_rng(seed)
    k = int(round(share * n))
    y = np.r_[np.ones(k, int), np.zeros(n - k, int)]
    f_a = np.clip(0.5 * y + 0.5 * rng.uniform(size=n), 0, 1)
    f_u = rng.uniform(size=200)
    r = estimate_accuracy(f_u, f_a, y, confidence_level=level, power_tuning=tune)
    assert 0.0 <= r.low < r.high <= 1.0
    assert 0.0 <= r.labelled_only_low < r.labelled_only_high <= 1.0
    assert r.labelled_only_low <= k / n <= r.labelled_only_high
    if min(k, n - k) < 10:
        assert r.interval == "exact" and r.estimate == k / n
    else:
        assert r.interval == "ppi" and r.low <= r.estimate <= r.high


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(0, 300), level=st.floats(0.5, 0.99))
def test_labelled_only_interval_is_clopper_pearson(n, k, level):
    k = min(k, n)
    y = np.r_[np.ones(k, int), np.zeros(n - k, int)]
    if n < 2:
        return
    r = estimate_accuracy(np.full(10, 0.5), np.full(n, 0.5), y, confidence_level=level)
    a = (1 - level) / 2
    low = 0.0 if k == 0 else beta.ppf(a, k, n - k + 1)
    high = 1.0 if k == n else beta.ppf(1 - a, k + 1, n - k)
    assert r.labelled_only_low == pytest.approx(low)
    assert r.labelled_only_high == pytest.approx(high)


@pytest.mark.slow
@pytest.mark.parametrize("acc", [0.5, 0.7, 0.95, 0.99, 0.995])
@pytest.mark.parametrize("n_audit", [20, 50, 200, 1000, 5000])
def test_coverage_sweep_large_monte_carlo(acc, n_audit):
    # 1,000 draws per cell: nominal 0.9 minus 0.03 (3.2 Monte-Carlo SE)
    assert _coverage(acc, n_audit, reps=1000, seed=1) >= 0.87


# ------------------------------------- defects 17 and 18 of issue 18
@pytest.mark.parametrize("flag", ["False", "no", 0, 1, None, np.array([True])])
def test_power_tuning_must_be_a_boolean(flag):
    # 88e3eac: power_tuning="False" acted as True
    p, y = np.full(50, 0.7), np.r_[np.ones(35, int), np.zeros(15, int)]
    with pytest.raises(ValueError, match="power_tuning must be True or False"):
        estimate_accuracy(p, p, y, power_tuning=flag)
    with pytest.raises(ValueError, match="power_tuning must be True or False"):
        estimate_selective_risk(p, p, y, threshold=0.5, power_tuning=flag)


def test_numpy_booleans_are_accepted():
    p, y = np.full(50, 0.7), np.r_[np.ones(35, int), np.zeros(15, int)]
    a = estimate_accuracy(p, p, y, power_tuning=np.bool_(False))
    assert a == estimate_accuracy(p, p, y, power_tuning=False)


@pytest.mark.parametrize(
    "threshold", [np.float32(0.8), np.float64(0.8), np.int64(0), np.float16(0.5)]
)
def test_numpy_scalar_thresholds_are_accepted(threshold):
    # 88e3eac refused np.float32(0.8): "threshold must be a number"
    rng = np.random.default_rng(0)
    p = rng.uniform(size=2000)
    y = (rng.uniform(size=2000) < p).astype(int)
    r = estimate_selective_risk(p[400:], p[:400], y[:400], threshold=threshold)
    ref = estimate_selective_risk(p[400:], p[:400], y[:400], threshold=float(threshold))
    assert r == ref


@pytest.mark.parametrize("threshold", [True, "0.8", None, np.nan, [0.8]])
def test_bad_thresholds_are_refused(threshold):
    p, y = np.full(50, 0.7), np.r_[np.ones(35, int), np.zeros(15, int)]
    with pytest.raises(ValueError, match="threshold must be a real number"):
        estimate_selective_risk(p, p, y, threshold=threshold)
