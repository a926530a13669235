"""Prediction-powered inference of the VLM's accuracy and selective risk.

After deployment, labels are scarce but a failure predictor gives every
unlabelled sample a predicted probability of being correct. Its mean is a
biased estimate of the accuracy; a small labelled *audit* set measures that
bias (the "rectifier") and removes it (Angelopoulos et al., Science 2023). With
power tuning (PPI++, Angelopoulos et al., 2023) the predictions are weighted by
a factor chosen from the data, so the interval is never much wider than the
labelled-only one and much narrower when the predictions are good.

The PPI interval rests on a normal approximation, which fails when the audit
set holds few errors (or few successes): with every audit label correct the
estimated variance is 0 and the interval collapses to a point. Where the audit
set has fewer than ``_CLT_MIN_COUNT`` of either outcome, the interval is
therefore the exact Clopper-Pearson interval of the audit labels alone, valid
at every sample size; elsewhere it is the PPI(++) interval.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy.stats import beta
from scipy.stats import t as student_t

from ..metrics._common import _check_confidence, _check_fraction, _check_y_binary

__all__ = ["PPIEstimate", "estimate_accuracy", "estimate_selective_risk"]

#: Fewest audit successes and failures for the normal approximation (the
#: textbook ``n p >= 10`` and ``n (1 - p) >= 10`` rule for a proportion).
_CLT_MIN_COUNT = 10


class PPIEstimate(NamedTuple):
    """A prediction-powered estimate with its confidence interval.

    Attributes
    ----------
    estimate : float
        Point estimate.
    low, high : float
        Bounds of the interval, in [0, 1]; ``low < high`` always.
    labelled_only_estimate, labelled_only_low, labelled_only_high : float
        The estimate and the exact (Clopper-Pearson) interval from the audit
        labels alone, at the same level, for comparison.
    weight : float
        Weight given to the predictions (1: plain PPI, 0: labelled only).
    n_unlabelled, n_audit : int
        Samples used.
    interval : str, default="ppi"
        ``"ppi"``: the prediction-powered normal-approximation interval;
        ``"exact"``: the audit set had fewer than 10 successes or 10 failures,
        too few for the normal approximation, so the estimate and interval
        are the exact labelled-only ones (``weight`` 0).

    Examples
    --------
    >>> from vilu_sklearn.selective import PPIEstimate
    >>> r = PPIEstimate(0.7, 0.68, 0.72, 0.7, 0.65, 0.75, 0.9, 10000, 200)
    >>> round(r.high - r.low, 2)
    0.04
    """

    estimate: float
    low: float
    high: float
    labelled_only_estimate: float
    labelled_only_low: float
    labelled_only_high: float
    weight: float
    n_unlabelled: int
    n_audit: int
    interval: str = "ppi"


def _check_probabilities(p: Any, name: str) -> np.ndarray:
    arr = _check_confidence(p, name)
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(
            f"{name} must hold probabilities of a correct prediction, in [0, 1] "
            f"(e.g. predict_proba(X)[:, 1]); got values in "
            f"[{arr.min():g}, {arr.max():g}]."
        )
    return arr


def _check_bool(value: Any, name: str) -> bool:
    """A flag must be a real boolean: ``"False"`` is a non-empty, true string."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(
            f"{name} must be True or False; got {value!r} "
            f"(of type {type(value).__name__})."
        )
    return bool(value)


def _check_threshold(threshold: Any) -> float:
    """A finite real number, numpy scalars included (not a bool)."""
    ok = isinstance(threshold, int | float | np.integer | np.floating)
    if isinstance(threshold, bool | np.bool_) or not ok:
        raise ValueError(
            f"threshold must be a real number (e.g. from calibrate_threshold); "
            f"got {threshold!r} (of type {type(threshold).__name__})."
        )
    value = float(threshold)
    if np.isnan(value):
        raise ValueError("threshold must be a real number; got NaN.")
    return value


def _check_level(confidence_level: Any) -> float:
    level = _check_fraction(confidence_level, "confidence_level")
    if level >= 1:
        raise ValueError(f"confidence_level must be in (0, 1); got {level}.")
    return level


def _clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    """Exact two-sided binomial interval, each tail at most ``(1 - level) / 2``."""
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return low, high


def _ppi_mean(
    f_u: np.ndarray, f_a: np.ndarray, y_a: np.ndarray, level: float, tune: bool
) -> PPIEstimate:
    """PPI(++) estimate of E[y] from predictions f and an audit set.

    Falls back to the exact labelled-only interval where the audit set has
    fewer than ``_CLT_MIN_COUNT`` successes or failures, or where the PPI
    standard error is 0 (e.g. constant predictions that match every label).
    """
    N, n = f_u.shape[0], f_a.shape[0]
    if n < 2:
        raise ValueError(
            f"The audit set needs at least 2 labelled samples; got {n}. The "
            "interval estimates the variance of the prediction error from them."
        )
    k = int(round(float(y_a.sum())))
    y_mean = float(y_a.mean())
    lab_low, lab_high = _clopper_pearson(k, n, level)
    exact = PPIEstimate(
        y_mean, lab_low, lab_high, y_mean, lab_low, lab_high, 0.0, N, n, "exact"
    )
    if min(k, n - k) < _CLT_MIN_COUNT:
        return exact
    lam = 1.0
    if tune:
        var_f = float(np.var(np.r_[f_u, f_a], ddof=1)) if N + n > 2 else 0.0
        cov = float(np.cov(y_a, f_a, ddof=1)[0, 1])
        lam = cov / ((1 + n / N) * var_f) if var_f > 0 else 0.0
        lam = float(np.clip(lam, 0.0, 1.0))
    est = float(lam * f_u.mean() + (y_a - lam * f_a).mean())
    var_u = lam**2 * np.var(f_u, ddof=1) / N if N > 1 else 0.0
    se = float(np.sqrt(var_u + np.var(y_a - lam * f_a, ddof=1) / n))
    if not se > 0:
        return exact
    # Student's t with the audit's degrees of freedom: a little wider than the
    # normal quantile for small audits, the same for large ones
    q = float(student_t.ppf(0.5 + level / 2, n - 1))
    low, high = max(est - q * se, 0.0), min(est + q * se, 1.0)
    if not low < high:  # the whole interval outside [0, 1]: no evidence
        return exact
    return PPIEstimate(
        min(max(est, 0.0), 1.0), low, high, y_mean, lab_low, lab_high, lam, N, n
    )


def estimate_accuracy(
    p_correct_unlabelled: Any,
    p_correct_audit: Any,
    y_correct_audit: Any,
    *,
    confidence_level: float = 0.9,
    power_tuning: bool = True,
) -> PPIEstimate:
    """Prediction-powered estimate of the VLM's accuracy on unlabelled data.

    ``estimate = w * mean(p_unlabelled) + mean(y_audit - w * p_audit)``: the
    failure predictor's mean predicted accuracy on the unlabelled set,
    corrected by its bias measured on the labelled audit set. The interval is
    a normal-approximation interval from the variances of both parts (with
    Student's t quantile, ``n_audit - 1`` degrees of freedom). With
    ``power_tuning`` (PPI++), ``w`` minimises that variance (estimated from the
    data, clipped to [0, 1]); ``w = 1`` is the original PPI.

    Where the audit set has fewer than 10 correct or fewer than 10 wrong
    predictions, the normal approximation is not trusted (with every audit
    label correct it would give a zero-width interval): the result is then the
    audit accuracy with its exact Clopper-Pearson interval
    (``interval="exact"``, ``weight=0``), which covers with probability at
    least ``confidence_level`` at every audit size. The labelled-only interval
    reported for comparison is always the Clopper-Pearson one.

    Guarantee: an i.i.d. audit set from the same distribution as the unlabelled
    set; exact coverage in the ``"exact"`` case, asymptotic coverage otherwise
    (measured within 0.03 of nominal from 20 to 5,000 audit samples and
    accuracies 0.5 to 0.995, docs/selective.md), whatever the quality of the
    predictions (bad predictions only widen the interval). It does not hold if
    the audit set is chosen differently (e.g. only hard cases).

    Parameters
    ----------
    p_correct_unlabelled : array-like of shape (n_unlabelled,)
        Predicted P(correct) on the unlabelled set, e.g.
        ``clf.predict_proba(X, X_txt)[:, 1]``.
    p_correct_audit : array-like of shape (n_audit,)
        Predicted P(correct) on the audit set.
    y_correct_audit : array-like of shape (n_audit,)
        1 (or True) where the VLM's prediction on an audit sample is correct,
        0 where it is wrong.
    confidence_level : float, default=0.9
        Coverage of the interval, in (0, 1).
    power_tuning : bool, default=True
        Weight the predictions to minimise the variance (PPI++).

    Returns
    -------
    result : PPIEstimate
        ``estimate``, ``low``, ``high`` and the labelled-only interval.

    See Also
    --------
    estimate_selective_risk : The same for the error rate above a threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.selective import estimate_accuracy
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.3, 1.0, size=20_200)            # calibrated P(correct)
    >>> y = (rng.uniform(size=p.size) < p).astype(int)    # labels: audit only
    >>> res = estimate_accuracy(p[200:], p[:200], y[:200])
    >>> bool(res.low < 0.65 < res.high)                   # true accuracy 0.65
    True
    >>> bool(res.high - res.low < res.labelled_only_high - res.labelled_only_low)
    True
    """
    level = _check_level(confidence_level)
    tune = _check_bool(power_tuning, "power_tuning")
    f_u = _check_probabilities(p_correct_unlabelled, "p_correct_unlabelled")
    f_a = _check_probabilities(p_correct_audit, "p_correct_audit")
    y_a = _check_y_binary(y_correct_audit, f_a.shape[0]).astype(np.float64)
    return _ppi_mean(f_u, f_a, y_a, level, tune)


def estimate_selective_risk(
    p_correct_unlabelled: Any,
    p_correct_audit: Any,
    y_correct_audit: Any,
    *,
    threshold: float,
    confidence_unlabelled: Any = None,
    confidence_audit: Any = None,
    confidence_level: float = 0.9,
    power_tuning: bool = True,
) -> PPIEstimate:
    """Prediction-powered estimate of the selective risk at a threshold.

    The selective risk is the error rate among the predictions accepted by
    ``confidence >= threshold``. It is a ratio (errors over accepted), but
    acceptance needs no label: given how many audit samples are accepted, they
    are an i.i.d. sample of the accepted sub-population, whose error rate is
    the selective risk. So the risk is ``1 -`` the accuracy of that
    sub-population, estimated by :func:`estimate_accuracy` on the accepted
    samples of both sets, with the same guarantees (the exact interval
    conditionally on the accepted count, hence also marginally).

    Parameters
    ----------
    p_correct_unlabelled : array-like of shape (n_unlabelled,)
        Predicted P(correct) on the unlabelled set.
    p_correct_audit : array-like of shape (n_audit,)
        Predicted P(correct) on the audit set.
    y_correct_audit : array-like of shape (n_audit,)
        1 (or True) where the VLM's prediction on an audit sample is correct.
    threshold : float
        Accept where ``confidence >= threshold`` (e.g. from
        :func:`calibrate_threshold`); numpy scalars are accepted.
    confidence_unlabelled, confidence_audit : array-like, default=None
        The confidences the threshold applies to (e.g. a
        ``decision_function``); default: the ``p_correct`` arrays.
    confidence_level : float, default=0.9
        Coverage of the interval, in (0, 1).
    power_tuning : bool, default=True
        Weight the predictions to minimise the variance (PPI++).

    Returns
    -------
    result : PPIEstimate
        Estimate and intervals of the selective risk (not the accuracy).

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.selective import estimate_selective_risk
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.3, 1.0, size=20_400)
    >>> y = (rng.uniform(size=p.size) < p).astype(int)
    >>> res = estimate_selective_risk(p[400:], p[:400], y[:400], threshold=0.8)
    >>> bool(res.low < 0.1 < res.high)                    # true risk 0.1
    True
    """
    threshold = _check_threshold(threshold)
    _check_level(confidence_level)
    _check_bool(power_tuning, "power_tuning")
    f_u = _check_probabilities(p_correct_unlabelled, "p_correct_unlabelled")
    f_a = _check_probabilities(p_correct_audit, "p_correct_audit")
    y_a = _check_y_binary(y_correct_audit, f_a.shape[0])
    c_u = (
        f_u
        if confidence_unlabelled is None
        else _check_confidence(confidence_unlabelled, "confidence_unlabelled")
    )
    c_a = (
        f_a
        if confidence_audit is None
        else _check_confidence(confidence_audit, "confidence_audit")
    )
    if c_u.shape != f_u.shape or c_a.shape != f_a.shape:
        raise ValueError(
            "confidence_unlabelled and confidence_audit must match the shapes of "
            f"the p_correct arrays ({f_u.shape} and {f_a.shape}); got "
            f"{c_u.shape} and {c_a.shape}."
        )
    acc_u, acc_a = c_u >= threshold, c_a >= threshold
    if not acc_u.any():
        raise ValueError(
            f"No unlabelled sample has a confidence >= threshold={threshold!r}: "
            "the selective risk of an empty accepted set is undefined."
        )
    if acc_a.sum() < 2:
        raise ValueError(
            f"Only {int(acc_a.sum())} audit sample(s) have a confidence >= "
            f"threshold={threshold!r}; at least 2 are needed."
        )
    acc = estimate_accuracy(
        f_u[acc_u],
        f_a[acc_a],
        y_a[acc_a],
        confidence_level=confidence_level,
        power_tuning=power_tuning,
    )
    return acc._replace(
        estimate=1 - acc.estimate,
        low=1 - acc.high,
        high=1 - acc.low,
        labelled_only_estimate=1 - acc.labelled_only_estimate,
        labelled_only_low=1 - acc.labelled_only_high,
        labelled_only_high=1 - acc.labelled_only_low,
    )
