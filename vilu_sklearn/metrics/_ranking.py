"""Ranking metrics of failure prediction: AUROC, FPR at a TPR, AUPR.

Positive classes and score directions: docs/conventions.md.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ._common import _TOL, _check_fraction, _grouped_stats, _require_both_classes

__all__ = ["auroc", "fpr_at_tpr", "aupr_error", "aupr_success"]

_FPR_METHODS = ("interpolate", "fd-shifts")


# --- kernels: pos, neg of shape (B, G), groups sorted by decreasing confidence --
def _k_auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Trapezoidal AUROC (= Mann-Whitney statistic, ties count one half)."""
    P, N = pos.sum(axis=1), neg.sum(axis=1)
    tp_before = np.cumsum(pos, axis=1) - pos
    return (neg * (tp_before + 0.5 * pos)).sum(axis=1) / (P * N)


def _roc_points(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    zeros = np.zeros((pos.shape[0], 1))
    tp = np.concatenate([zeros, np.cumsum(pos, axis=1)], axis=1)
    fp = np.concatenate([zeros, np.cumsum(neg, axis=1)], axis=1)
    return fp / fp[:, -1:], tp / tp[:, -1:]


def _k_fpr(
    pos: np.ndarray,
    neg: np.ndarray,
    tpr: float = 0.95,
    method: str = "interpolate",
) -> np.ndarray:
    fpr_c, tpr_c = _roc_points(pos, neg)
    rows = np.arange(pos.shape[0])
    if method == "fd-shifts":
        # first ROC point reaching the target; exists because the last TPR is 1
        k = np.argmax(tpr_c >= tpr - _TOL, axis=1)
        return fpr_c[rows, k]
    # np.interp semantics (what interp1d(tpr, fpr)(tpr) runs): last point with
    # TPR <= target, then linear interpolation towards the next point
    j = (tpr_c <= tpr + _TOL).sum(axis=1) - 1
    f0, t0 = fpr_c[rows, j], tpr_c[rows, j]
    j1 = np.minimum(j + 1, tpr_c.shape[1] - 1)
    f1, t1 = fpr_c[rows, j1], tpr_c[rows, j1]
    gap = t1 - t0
    hit = (t0 >= tpr - _TOL) | (gap <= 0)
    frac = np.divide(tpr - t0, gap, out=np.zeros_like(gap), where=~hit)
    return np.where(hit, f0, f0 + np.clip(frac, 0.0, 1.0) * (f1 - f0))


def _k_ap(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Average precision of ``pos`` (the positive class), groups in rank order."""
    tp = np.cumsum(pos, axis=1)
    fp = np.cumsum(neg, axis=1)
    denom = tp + fp
    prec = np.divide(tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return (pos * prec).sum(axis=1) / tp[:, -1]


def _k_aupr_success(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    return _k_ap(pos, neg)


def _k_aupr_error(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    # failures positive, ranked by -confidence: reverse the group order
    return _k_ap(neg[:, ::-1], pos[:, ::-1])


# --- public functions ---------------------------------------------------------
def auroc(y_correct: Any, confidence: Any, *, sample_weight: Any = None) -> float:
    """Area under the ROC curve of failure prediction, successes positive.

    The probability that a correct prediction gets a higher confidence than a
    wrong one (ties count one half). Same value as
    ``sklearn.metrics.roc_auc_score(y_correct, confidence)``; 0.5 is chance
    level, 1 a perfect separation of successes from failures.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 (or False) where it
        is wrong. Successes (``y_correct = 1``) are the positive class.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct. A 2-D array such as the
        output of ``predict_proba`` is rejected: pass ``proba[:, 1]``.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.

    Returns
    -------
    auroc : float
        In [0, 1], higher is better.

    Raises
    ------
    ValueError
        If ``y_correct`` holds only one class (the VLM is always right, or
        always wrong, on this data).

    See Also
    --------
    fpr_at_tpr : False positive rate at a fixed true positive rate.

    Examples
    --------
    >>> from vilu_sklearn.metrics import auroc
    >>> auroc([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1])
    0.75
    """
    _, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    _require_both_classes(pos, neg, "AUROC")
    return float(_k_auroc(pos, neg)[0])


def fpr_at_tpr(
    y_correct: Any,
    confidence: Any,
    *,
    sample_weight: Any = None,
    tpr: float = 0.95,
    method: Literal["interpolate", "fd-shifts"] = "interpolate",
) -> float:
    """False positive rate at a given true positive rate, successes positive.

    With successes (``y_correct = 1``) as the positive class, this is the share
    of *failures* still accepted when the confidence threshold keeps a fraction
    ``tpr`` of the *correct* predictions (FPR@95%TPR for ``tpr=0.95``), as in
    ViLU and FD-Shifts. Lower is better.

    Two conventions exist and give different numbers when the ROC curve crosses
    ``tpr`` on a sloped segment (confidences tied between a success and a
    failure):

    * ``method="interpolate"`` (default, the ViLU reference code): the ROC curve
      (with the point (0, 0)) is linearly interpolated,
      ``interp1d(tpr_curve, fpr_curve)(tpr)``. When the curve is flat at exactly
      the target TPR (failures accepted before the next success), this returns
      the *largest* FPR of the flat stretch, as ``np.interp`` does.
    * ``method="fd-shifts"``: ``min(fpr_curve[tpr_curve >= tpr])``, the FPR of
      the first ROC point reaching the target, i.e. the *smallest* FPR of such
      a flat stretch. It is taken over every unique threshold (the curve of
      ``roc_curve(..., drop_intermediate=False)``). FD-Shifts' code uses the cut
      0.9495 to absorb rounding (pass ``tpr=0.9495``) and sklearn's default
      ``drop_intermediate=True``, which can skip a point in the middle of a
      sloped segment and then give a larger value.

    The two agree when the target TPR falls strictly inside a vertical step of
    the curve; they differ on a flat stretch at exactly the target and on
    sloped segments (confidences tied between successes and failures).

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
        Successes are the positive class.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.
    tpr : float, default=0.95
        Target true positive rate (share of correct predictions kept), in (0, 1].
    method : {"interpolate", "fd-shifts"}, default="interpolate"
        How the FPR is read off the ROC curve, see above.

    Returns
    -------
    fpr : float
        In [0, 1], lower is better.

    Raises
    ------
    ValueError
        If ``y_correct`` holds only one class (the VLM is always right, or
        always wrong, on this data).

    Examples
    --------
    >>> from vilu_sklearn.metrics import fpr_at_tpr
    >>> y = [1, 1, 0, 1, 0]
    >>> conf = [0.9, 0.8, 0.5, 0.5, 0.1]
    >>> fpr_at_tpr(y, conf, tpr=0.8)
    0.2
    >>> fpr_at_tpr(y, conf, tpr=0.8, method="fd-shifts")
    0.5
    """
    tpr = _check_fraction(tpr, "tpr")
    if method not in _FPR_METHODS:
        raise ValueError(f"method must be one of {_FPR_METHODS}; got {method!r}.")
    _, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    _require_both_classes(pos, neg, "FPR@TPR")
    return float(_k_fpr(pos, neg, tpr=tpr, method=method)[0])


def aupr_error(y_correct: Any, confidence: Any, *, sample_weight: Any = None) -> float:
    """Area under the precision-recall curve with failures as the positive class.

    Average precision (step-wise, as ``sklearn.metrics.average_precision_score``)
    of detecting failures (``y_correct = 0`` positive) ranked by
    ``-confidence``: equal to ``average_precision_score(1 - y_correct,
    -confidence)``. This is ViLU's "AUPR-Error". Its chance level is the error
    rate.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
        Failures (``y_correct = 0``) are the positive class here.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.

    Returns
    -------
    aupr : float
        In [0, 1], higher is better.

    Raises
    ------
    ValueError
        If ``y_correct`` holds only one class (the VLM is always right, or
        always wrong, on this data).

    See Also
    --------
    aupr_success : The same with successes as the positive class.

    Examples
    --------
    >>> from vilu_sklearn.metrics import aupr_error
    >>> aupr_error([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1])
    0.8333...
    """
    _, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    _require_both_classes(pos, neg, "AUPR-error")
    return float(_k_aupr_error(pos, neg)[0])


def aupr_success(
    y_correct: Any, confidence: Any, *, sample_weight: Any = None
) -> float:
    """Area under the precision-recall curve with successes as the positive class.

    Average precision of detecting correct predictions (``y_correct = 1``
    positive) ranked by confidence: equal to
    ``sklearn.metrics.average_precision_score(y_correct, confidence)``. Its
    chance level is the accuracy.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
        Successes are the positive class.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.

    Returns
    -------
    aupr : float
        In [0, 1], higher is better.

    Raises
    ------
    ValueError
        If ``y_correct`` holds only one class (the VLM is always right, or
        always wrong, on this data).

    See Also
    --------
    aupr_error : The same with failures as the positive class.

    Examples
    --------
    >>> from vilu_sklearn.metrics import aupr_success
    >>> aupr_success([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1])
    0.8333...
    """
    _, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    _require_both_classes(pos, neg, "AUPR-success")
    return float(_k_aupr_success(pos, neg)[0])
