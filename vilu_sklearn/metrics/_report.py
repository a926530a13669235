"""All failure-prediction metrics at once, optionally with bootstrap intervals."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from ._bootstrap import (
    _SPECS,
    _bootstrap_kernels,
    _check_bootstrap_params,
    _interval,
    _Spec,
)
from ._common import _check_fraction, _grouped_stats
from ._ranking import _FPR_METHODS, aupr_error, aupr_success, auroc, fpr_at_tpr
from ._selective import (
    augrc,
    aurc,
    coverage_at_risk,
    eaurc,
    risk_at_coverage,
)

__all__ = ["failure_report"]


def failure_report(
    y_correct: Any,
    confidence: Any,
    *,
    sample_weight: Any = None,
    tpr: float = 0.95,
    fpr_method: Literal["interpolate", "fd-shifts"] = "interpolate",
    coverage: float = 0.8,
    risk: float = 0.05,
    n_resamples: int = 0,
    confidence_level: float = 0.95,
    random_state: Any = 0,
) -> dict[str, float]:
    """Every failure-prediction metric of the package in one dictionary.

    Positive classes and score directions as in docs/conventions.md. AURC,
    E-AURC and AUGRC are on their raw scale (FD-Shifts displays them x1000).

    Metrics undefined on data with a single class (AUROC, FPR@TPR and the two
    AUPRs, when the VLM is always right or always wrong) are reported as NaN
    with a warning instead of raising.

    Parameters
    ----------
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    confidence : array-like of shape (n_samples,)
        Confidence scores, higher = more likely correct (1-D; for
        ``predict_proba`` output pass ``proba[:, 1]``).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; integer weights equal repeating samples.
    tpr : float, default=0.95
        Target TPR of ``"fpr_at_tpr"``.
    fpr_method : {"interpolate", "fd-shifts"}, default="interpolate"
        ``method`` of :func:`fpr_at_tpr`.
    coverage : float, default=0.8
        Coverage of ``"risk_at_coverage"``.
    risk : float, default=0.05
        Target risk of ``"coverage_at_risk"``.
    n_resamples : int, default=0
        With a positive value, add percentile bootstrap intervals computed on
        ``n_resamples`` shared resamples: keys ``"<metric>_ci_low"`` and
        ``"<metric>_ci_high"``.
    confidence_level : float, default=0.95
        Coverage of the bootstrap intervals.
    random_state : int, RandomState instance or None, default=0
        Seed of the bootstrap.

    Returns
    -------
    report : dict of str to float
        Keys ``"n_samples"`` (total weight), ``"accuracy"``, ``"auroc"``,
        ``"fpr_at_tpr"``, ``"aupr_error"``, ``"aupr_success"``, ``"aurc"``,
        ``"eaurc"``, ``"augrc"``, ``"risk_at_coverage"``,
        ``"coverage_at_risk"``, plus the interval bounds when requested.

    See Also
    --------
    bootstrap_ci : Interval of a single metric.

    Examples
    --------
    >>> from vilu_sklearn.metrics import failure_report
    >>> report = failure_report([1, 1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1])
    >>> report["auroc"], report["accuracy"]
    (0.8333..., 0.6)
    >>> list(report)[:4]
    ['n_samples', 'accuracy', 'auroc', 'fpr_at_tpr']
    """
    tpr = _check_fraction(tpr, "tpr")
    coverage = _check_fraction(coverage, "coverage")
    risk = _check_fraction(risk, "risk", allow_zero=True)
    if fpr_method not in _FPR_METHODS:
        raise ValueError(
            f"fpr_method must be one of {_FPR_METHODS}; got {fpr_method!r}."
        )
    if n_resamples:
        _check_bootstrap_params(n_resamples, confidence_level)
    groups, pos, neg = _grouped_stats(y_correct, confidence, sample_weight)
    total = float(pos.sum() + neg.sum())
    metrics: dict[str, tuple[Any, dict[str, Any]]] = {
        "auroc": (auroc, {}),
        "fpr_at_tpr": (fpr_at_tpr, {"tpr": tpr, "method": fpr_method}),
        "aupr_error": (aupr_error, {}),
        "aupr_success": (aupr_success, {}),
        "aurc": (aurc, {}),
        "eaurc": (eaurc, {}),
        "augrc": (augrc, {}),
        "risk_at_coverage": (risk_at_coverage, {"coverage": coverage}),
        "coverage_at_risk": (coverage_at_risk, {"risk": risk}),
    }
    single_class = pos.sum() <= 0 or neg.sum() <= 0
    if single_class:
        warnings.warn(
            "y_correct holds only one class (the VLM is always right, or always "
            "wrong, on this data): AUROC, FPR@TPR and AUPR are undefined and "
            "reported as NaN.",
            UserWarning,
            stacklevel=2,
        )
    report: dict[str, float] = {
        "n_samples": total,
        "accuracy": float(pos.sum()) / total,
    }
    specs: dict[str, tuple[_Spec, dict[str, Any]]] = {}
    for key, (fn, kwargs) in metrics.items():
        spec = _SPECS[fn]
        if spec.needs_both_classes and single_class:
            report[key] = float("nan")
            continue
        report[key] = float(spec.kernel(pos, neg, **kwargs)[0])
        specs[key] = (spec, kwargs)
    if not n_resamples:
        return report
    boot = _bootstrap_kernels(
        specs, groups, n_resamples=n_resamples, random_state=random_state
    )
    with_ci: dict[str, float] = {}
    for key, value in report.items():
        with_ci[key] = value
        if key in metrics:
            low = high = float("nan")
            if key in boot and boot[key][0].size:
                low, high = _interval(boot[key][0], float(confidence_level))
            with_ci[f"{key}_ci_low"] = low
            with_ci[f"{key}_ci_high"] = high
    return with_ci
