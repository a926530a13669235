"""Prediction-powered inference of the VLM's accuracy and selective risk.

After deployment, labels are scarce but a failure predictor gives every
unlabelled sample a predicted probability of being correct. Its mean is a
biased estimate of the accuracy; a small labelled *audit* set measures that
bias (the "rectifier") and removes it (Angelopoulos et al., Science 2023). With
power tuning (PPI++, Angelopoulos et al., 2023) the predictions are weighted by
a factor chosen from the data, so the interval is never much wider than the
labelled-only one and much narrower when the predictions are good.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy.stats import norm

from ..metrics._common import _check_confidence, _check_fraction, _check_y_binary

__all__ = ["PPIEstimate", "estimate_accuracy", "estimate_selective_risk"]


class PPIEstimate(NamedTuple):
    """A prediction-powered estimate with its confidence interval.

    Attributes
    ----------
    estimate : float
        Point estimate.
    low, high : float
        Bounds of the interval (normal approximation, clipped to [0, 1]).
    labelled_only_estimate, labelled_only_low, labelled_only_high : float
        The classical estimate and interval from the audit labels alone, at the
        same level, for comparison.
    weight : float
        Weight given to the predictions (1: plain PPI, 0: labelled only).
    n_unlabelled, n_audit : int
        Samples used.

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


def _check_probabilities(p: Any, name: str) -> np.ndarray:
    arr = _check_confidence(p, name)
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(
            f"{name} must hold probabilities of a correct prediction, in [0, 1] "
            f"(e.g. predict_proba(X)[:, 1]); got values in "
            f"[{arr.min():g}, {arr.max():g}]."
        )
    return arr


def _check_level(confidence_level: Any) -> float:
    level = _check_fraction(confidence_level, "confidence_level")
    if level >= 1:
        raise ValueError(f"confidence_level must be in (0, 1); got {level}.")
    return level


def _ppi_mean(
    f_u: np.ndarray, f_a: np.ndarray, y_a: np.ndarray, level: float, tune: bool
) -> PPIEstimate:
    """PPI(++) estimate of E[y] from predictions f and an audit set."""
    N, n = f_u.shape[0], f_a.shape[0]
    if n < 2:
        raise ValueError(
            f"The audit set needs at least 2 labelled samples; got {n}. The "
            "interval estimates the variance of the prediction error from them."
        )
    z = float(norm.ppf(0.5 + level / 2))
    lam = 1.0
    if tune:
        var_f = float(np.var(np.r_[f_u, f_a], ddof=1)) if N + n > 2 else 0.0
        cov = float(np.cov(y_a, f_a, ddof=1)[0, 1])
        lam = cov / ((1 + n / N) * var_f) if var_f > 0 else 0.0
        lam = float(np.clip(lam, 0.0, 1.0))
    est = lam * f_u.mean() + (y_a - lam * f_a).mean()
    var_u = lam**2 * np.var(f_u, ddof=1) / N if N > 1 else 0.0
    se = float(np.sqrt(var_u + np.var(y_a - lam * f_a, ddof=1) / n))
    y_mean = float(y_a.mean())
    se_y = float(np.sqrt(np.var(y_a, ddof=1) / n))

    def clip(v: float) -> float:
        return float(min(max(v, 0.0), 1.0))

    return PPIEstimate(
        clip(est),
        clip(est - z * se),
        clip(est + z * se),
        y_mean,
        clip(y_mean - z * se_y),
        clip(y_mean + z * se_y),
        lam,
        N,
        n,
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
    a normal-approximation interval from the variances of both parts. With
    ``power_tuning`` (PPI++), ``w`` minimises that variance (estimated from the
    data, clipped to [0, 1]); ``w = 1`` is the original PPI.

    Guarantee: asymptotic coverage ``confidence_level`` when the audit set is
    an i.i.d. sample of the same distribution as the unlabelled set, whatever
    the quality of the predictions (bad predictions only widen the interval).
    It does not hold if the audit set is chosen differently (e.g. only hard
    cases), and the normal approximation needs tens of audit samples.

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
    f_u = _check_probabilities(p_correct_unlabelled, "p_correct_unlabelled")
    f_a = _check_probabilities(p_correct_audit, "p_correct_audit")
    y_a = _check_y_binary(y_correct_audit, f_a.shape[0]).astype(np.float64)
    return _ppi_mean(f_u, f_a, y_a, level, bool(power_tuning))


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
    ``confidence >= threshold``. Acceptance needs no label, so the risk is
    ``1 -`` the accuracy of the accepted sub-population, estimated by
    :func:`estimate_accuracy` on the accepted samples of both sets; the same
    guarantee holds (an i.i.d. audit set, asymptotic coverage).

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
        :func:`calibrate_threshold`).
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
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValueError(f"threshold must be a number; got {threshold!r}.")
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
