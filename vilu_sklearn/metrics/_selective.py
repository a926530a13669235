"""Selective-classification metrics: risk-coverage curve, AURC, E-AURC, AUGRC.

Labels and confidences follow the package conventions (docs/conventions.md). A
threshold on the confidence
*accepts* the samples above it; *coverage* is the (weighted) share accepted and
*selective risk* the error rate among them.

Ties. Samples with equal confidence cannot be separated by a threshold, so the
curve is evaluated at unique confidence values (as FD-Shifts does). Inside a
block of tied samples, AURC, AUGRC and :func:`risk_at_coverage` use the
*expected* value over a uniformly random order of the tied samples (accepted
errors grow linearly through the block). Results therefore never depend on the
input order, and a scorer that separates successes from failures, tied or not,
reaches the oracle value.

Scale. AURC, E-AURC and AUGRC are returned on their raw scale, in [0, 1];
FD-Shifts displays them multiplied by 1000.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import digamma

from ._common import _TOL, _check_fraction, _grouped_stats

__all__ = [
    "risk_coverage_curve",
    "aurc",
    "eaurc",
    "augrc",
    "risk_at_coverage",
    "coverage_at_risk",
]


# --- kernels: pos, neg of shape (B, G), groups sorted by decreasing confidence --
def _cumulated(pos: np.ndarray, neg: np.ndarray):
    cnt = pos + neg
    m = np.cumsum(cnt, axis=1)  # accepted weight at the end of each group
    fp = np.cumsum(neg, axis=1)  # accepted failures at the end of each group
    m_prev, fp_prev = m - cnt, fp - neg
    # failure share inside each group: slope of accepted errors within the group
    b = np.divide(neg, cnt, out=np.zeros_like(neg), where=cnt > 0)
    return cnt, m, fp, m_prev, fp_prev, b


def _k_aurc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Geifman's discrete AURC, (1/n) sum_k risk(top k), ties in expectation.

    Inside a group, errors among the top k are ``fp_prev + b (k - m_prev)``;
    summing ``errors / k`` over the group gives ``neg + (fp_prev - b m_prev)
    (H(m) - H(m_prev))`` with harmonic numbers ``H(x) = digamma(x + 1) + gamma``
    (which extends the sum to non-integer weights).
    """
    _, m, _, m_prev, fp_prev, b = _cumulated(pos, neg)
    harmonic = digamma(m + 1.0) - digamma(m_prev + 1.0)
    total = neg + (fp_prev - b * m_prev) * harmonic
    return total.sum(axis=1) / m[:, -1]


def _k_oracle_aurc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AURC of the oracle ranking every success above every failure."""
    P, N = pos.sum(axis=1), neg.sum(axis=1)
    W = P + N
    harmonic = digamma(W + 1.0) - digamma(P + 1.0)
    return (N - P * harmonic) / W


def _k_eaurc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    return _k_aurc(pos, neg) - _k_oracle_aurc(pos, neg)


def _k_augrc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Integral of the generalized risk (accepted failures / W) over coverage."""
    cnt, m, _, _, fp_prev, _ = _cumulated(pos, neg)
    total = cnt * fp_prev + 0.5 * neg * cnt
    return total.sum(axis=1) / m[:, -1] ** 2


def _k_risk_at_coverage(
    pos: np.ndarray, neg: np.ndarray, coverage: float = 0.8
) -> np.ndarray:
    _, m, _, m_prev, fp_prev, b = _cumulated(pos, neg)
    W = m[:, -1]
    u = coverage * W
    rows = np.arange(pos.shape[0])
    k = np.argmax(m >= (u - _TOL * W)[:, None], axis=1)
    errors = fp_prev[rows, k] + b[rows, k] * np.maximum(u - m_prev[rows, k], 0.0)
    return errors / u


def _k_coverage_at_risk(
    pos: np.ndarray, neg: np.ndarray, risk: float = 0.05
) -> np.ndarray:
    cnt, m, fp, m_prev, fp_prev, b = _cumulated(pos, neg)
    W = m[:, -1:]
    tol = _TOL * W
    end_ok = (fp <= risk * m + tol) & (cnt > 0)
    # risk at the start of a group (its limit from the right when m_prev = 0)
    start_ok = np.where(m_prev > 0, fp_prev <= risk * m_prev + tol, b <= risk + _TOL)
    # the selective risk is monotone inside a group: if it starts below the target
    # and ends above, it crosses it once, at u* = (b m_prev - fp_prev) / (b - risk)
    cross = start_ok & ~end_ok & (cnt > 0) & (b > risk)
    slope = np.where(cross, b - risk, 1.0)
    u_star = np.where(cross, (b * m_prev - fp_prev) / slope, 0.0)
    best = np.where(end_ok, m, np.where(cross, np.clip(u_star, m_prev, m), 0.0))
    return best.max(axis=1) / W[:, 0]


# --- public functions ---------------------------------------------------------
def risk_coverage_curve(
    y_correct: Any, confidence: Any, *, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Selective risk against coverage, at every unique confidence threshold.

    Accepting the samples whose confidence is ``>= thresholds[i]`` covers a
    share ``coverage[i]`` of the (weighted) data, with an error rate
    ``risk[i]`` among the accepted samples.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.

    Returns
    -------
    coverage : ndarray of shape (n_thresholds,)
        Increasing, the last value is 1.
    risk : ndarray of shape (n_thresholds,)
        Selective risk (error rate of the accepted samples) at each coverage;
        the last value is the overall error rate.
    thresholds : ndarray of shape (n_thresholds,)
        Decreasing unique confidence values (of samples with positive weight).

    See Also
    --------
    aurc : Area under this curve.

    Examples
    --------
    >>> from vilu_sklearn.metrics import risk_coverage_curve
    >>> coverage, risk, thresholds = risk_coverage_curve(
    ...     [1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
    >>> coverage
    array([0.25, 0.75, 1.  ])
    >>> risk
    array([0.        , 0.33333333, 0.5       ])
    >>> thresholds
    array([0.9, 0.8, 0.1])
    """
    groups, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    _, m, fp, _, _, _ = _cumulated(pos, neg)
    m, fp = m[0], fp[0]
    keep = (pos + neg)[0] > 0
    return m[keep] / m[-1], fp[keep] / m[keep], groups.thresholds[keep]


def aurc(y_correct: Any, confidence: Any, *, sample_weight: Any = None) -> float:
    """Area under the risk-coverage curve (AURC), raw scale in [0, 1].

    With the samples sorted by decreasing confidence, AURC is the selective risk
    averaged over coverage (Geifman et al., 2019):
    ``AURC = (1/n) sum_{k=1..n} errors(top k) / k``. Tied confidences are
    grouped: inside a block of ties the expected value over a random order of
    the block is used, so the result does not depend on the input order. A
    constant confidence gives the error rate. Lower is better; FD-Shifts
    displays this number multiplied by 1000.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights, treated as (possibly fractional) counts:
        integer weights equal repeating samples. Because the discrete AURC
        depends slightly on n, multiplying all weights by a constant changes the
        value by O(1/n).

    Returns
    -------
    aurc : float
        In [0, 1], lower is better.

    See Also
    --------
    eaurc : AURC minus the AURC of the oracle.
    augrc : Area under the generalized risk-coverage curve.

    Examples
    --------
    >>> from vilu_sklearn.metrics import aurc
    >>> # sorted by confidence: correct, wrong -> risks 0/1 and 1/2
    >>> aurc([0, 1], [0.2, 0.7])
    0.25
    """
    _, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    return float(_k_aurc(pos, neg)[0])


def eaurc(y_correct: Any, confidence: Any, *, sample_weight: Any = None) -> float:
    """Excess AURC: AURC minus the AURC of the oracle on the same labels.

    The oracle ranks every correct prediction above every wrong one; its AURC is
    computed exactly on the same (weighted) labels, so any scorer separating
    successes from failures has E-AURC 0, and E-AURC >= 0 otherwise. With an
    error rate ``r``, the oracle's AURC tends to ``r + (1 - r) ln(1 - r)`` for
    large n. Raw scale (FD-Shifts displays x1000); lower is better.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.

    Returns
    -------
    eaurc : float
        In [0, 1], lower is better.

    See Also
    --------
    aurc : Area under the risk-coverage curve.

    Examples
    --------
    >>> from vilu_sklearn.metrics import eaurc
    >>> eaurc([0, 1], [0.2, 0.7])  # perfect ranking
    0.0
    >>> eaurc([0, 1], [0.7, 0.2])  # reversed: AURC 3/4, oracle 1/4
    0.5
    """
    _, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    return float(_k_eaurc(pos, neg)[0])


def augrc(y_correct: Any, confidence: Any, *, sample_weight: Any = None) -> float:
    """Area under the generalized risk-coverage curve (Traub et al., 2024).

    The generalized risk at a threshold is the share of *all* samples that are
    accepted and wrong (accepted failures / n), integrated over coverage from
    0 to 1; ties are grouped (accepted failures grow linearly through a block of
    tied confidences). It satisfies exactly
    ``AUGRC = (1 - AUROC) * acc * r + r**2 / 2`` with ``r`` the error rate and
    ``acc = 1 - r``. Raw scale in [0, 0.5] (FD-Shifts displays x1000); lower is
    better.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.

    Returns
    -------
    augrc : float
        Lower is better.

    Examples
    --------
    >>> from vilu_sklearn.metrics import augrc
    >>> augrc([0, 1], [0.2, 0.7])  # r = 1/2, AUROC = 1: r**2 / 2
    0.125
    """
    _, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    return float(_k_augrc(pos, neg)[0])


def risk_at_coverage(
    y_correct: Any,
    confidence: Any,
    *,
    sample_weight: Any = None,
    coverage: float = 0.8,
) -> float:
    """Selective risk when the most confident ``coverage`` share is accepted.

    The error rate among the samples with the highest confidences that make up
    a share ``coverage`` of the (weighted) data. When the cut falls inside a
    block of tied confidences, the expected risk over a random order of the
    block is returned. Lower is better.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.
    coverage : float, default=0.8
        Share of the data accepted, in (0, 1].

    Returns
    -------
    risk : float
        In [0, 1], lower is better.

    Examples
    --------
    >>> from vilu_sklearn.metrics import risk_at_coverage
    >>> y = [1, 1, 0, 1, 0]
    >>> conf = [0.9, 0.8, 0.7, 0.6, 0.1]
    >>> risk_at_coverage(y, conf, coverage=0.8)  # top 4: one error
    0.25
    """
    coverage = _check_fraction(coverage, "coverage")
    _, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    return float(_k_risk_at_coverage(pos, neg, coverage=coverage)[0])


def coverage_at_risk(
    y_correct: Any,
    confidence: Any,
    *,
    sample_weight: Any = None,
    risk: float = 0.05,
) -> float:
    """Largest coverage whose selective risk does not exceed ``risk``.

    Uses the same tie model as :func:`risk_at_coverage` (inside a block of tied
    confidences, accepted errors grow linearly), so
    ``risk_at_coverage(..., coverage=coverage_at_risk(..., risk=t)) <= t``.
    Returns 0 when even the most confident samples exceed the target. Higher is
    better.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.
    risk : float, default=0.05
        Target selective risk, in [0, 1].

    Returns
    -------
    coverage : float
        In [0, 1], higher is better.

    Examples
    --------
    >>> from vilu_sklearn.metrics import coverage_at_risk
    >>> y = [1, 1, 0, 1, 0]
    >>> conf = [0.9, 0.8, 0.7, 0.6, 0.1]
    >>> coverage_at_risk(y, conf, risk=0.25)  # top 4 hold one error
    0.8
    >>> coverage_at_risk(y, conf, risk=0.0)
    0.4
    """
    risk = _check_fraction(risk, "risk", allow_zero=True)
    _, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    return float(_k_coverage_at_risk(pos, neg, risk=risk)[0])
