"""Scorers for ``GridSearchCV(scoring=...)`` and ``cross_validate``.

A scorer is called as ``scorer(estimator, X, y)`` and returns a float where
greater is better. Metrics where lower is better (FPR@95%TPR, AURC, E-AURC,
AUGRC, risk at a coverage) are negated, following scikit-learn's ``neg_``
naming convention (e.g. ``"neg_aurc"``).

Two calling conventions, chosen from the estimator (the last step of a
:class:`~sklearn.pipeline.Pipeline`):

* classification mode (default): ``y`` is ``y_correct`` (1 = the VLM's
  prediction is correct) and the confidence is ``estimator.decision_function(X)``
  (or the probability of class 1 from ``predict_proba`` when there is no
  ``decision_function``);
* caption mode (``estimator.mode == "caption"``): ``y`` is the caption matrix
  ``X_txt`` paired row by row with the images ``X``; ``y_correct`` is
  :func:`vilu_sklearn.caption_correctness` of the raw ``(X, y)`` with the
  estimator's ``caption_group_size`` and ``normalize``, and the confidence is
  ``estimator.decision_function(X, y)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from .._zero_shot import caption_correctness
from ._ranking import aupr_error, aupr_success, auroc, fpr_at_tpr
from ._selective import augrc, aurc, eaurc, risk_at_coverage

__all__ = [
    "FailureScorer",
    "make_failure_scorer",
    "get_scorer",
    "get_scorer_names",
]


def _final_step(estimator: Any) -> Any:
    if isinstance(estimator, Pipeline):
        return estimator.steps[-1][1]
    return estimator


def _confidence_of(estimator: Any, X: Any) -> np.ndarray:
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X))
    if hasattr(estimator, "predict_proba"):
        proba = np.asarray(estimator.predict_proba(X))
        classes = list(getattr(estimator, "classes_", [0, 1]))
        if proba.ndim != 2 or 1 not in classes:
            raise ValueError(
                "predict_proba must return an (n, 2) array with a column for "
                f"y_correct = 1; got shape {proba.shape} for classes {classes}."
            )
        return proba[:, classes.index(1)]
    raise TypeError(
        f"{type(estimator).__name__} has neither decision_function nor "
        "predict_proba: a failure scorer needs a confidence score."
    )


def _targets_and_confidence(
    estimator: Any, X: Any, y: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``(y_correct, confidence)`` of a fitted failure predictor on ``(X, y)``.

    The single place that knows the classification / caption calling
    conventions (see the module docstring); used by the scorers and by the
    ``from_estimator`` constructors of the Displays.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Fitted failure predictor.
    X : array-like of shape (n_samples, n_features)
        Image embeddings (or the pipeline's input).
    y : array-like
        ``y_correct`` of shape (n_samples,) in classification mode; the
        caption embeddings ``X_txt`` of shape (n_samples, d) in caption mode.

    Returns
    -------
    y_correct : ndarray of shape (n_samples,)
    confidence : ndarray
        As returned by the estimator (validated later by the metrics).
    """
    final = _final_step(estimator)
    if getattr(final, "mode", None) == "caption":
        missing = [a for a in ("caption_group_size",) if not hasattr(final, a)]
        if missing:
            raise AttributeError(
                f"{type(final).__name__} has mode='caption' but no attribute "
                f"{missing[0]!r}, needed to compute the caption correctness."
            )
        if y is None or np.ndim(y) != 2:
            raise ValueError(
                "In caption mode y must be the caption embeddings X_txt, a 2-D "
                f"array paired row by row with X; got shape {np.shape(y)}."
            )
        y_correct = caption_correctness(
            X,
            y,
            group_size=int(final.caption_group_size),
            normalize=bool(getattr(final, "normalize", True)),
        )
        if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
            Xt = estimator[:-1].transform(X)
        else:
            Xt = X
        return y_correct, np.asarray(final.decision_function(Xt, y))
    if y is None:
        raise ValueError(
            "y (y_correct: 1 where the VLM's prediction is correct) is required "
            "to score a failure predictor."
        )
    return np.asarray(y), _confidence_of(estimator, X)


class FailureScorer:
    """Callable ``scorer(estimator, X, y)`` wrapping a failure metric.

    Labels and confidences as in docs/conventions.md. The scorer returns
    ``sign * metric(y_correct, confidence, **kwargs)``; ``sign = -1`` for
    metrics where lower is better, so that greater is always better. See the
    module :mod:`vilu_sklearn.metrics` for the classification and caption
    calling conventions. Instances pickle (for ``n_jobs > 1``).

    Parameters
    ----------
    metric : callable
        ``metric(y_correct, confidence, *, sample_weight=None, **kwargs)``, a
        module-level function (so that the scorer pickles).
    sign : {1, -1}, default=1
        -1 when lower values of the metric are better.
    **kwargs
        Passed to the metric.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from vilu_sklearn.metrics import FailureScorer, fpr_at_tpr
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> y_correct = np.array([0, 1, 0, 1])
    >>> clf = LogisticRegression().fit(X, y_correct)
    >>> scorer = FailureScorer(fpr_at_tpr, sign=-1, tpr=0.9)
    >>> scorer
    FailureScorer(fpr_at_tpr, sign=-1, tpr=0.9)
    >>> scorer(clf, X, y_correct)  # minus the FPR at 90% TPR
    -0.5
    """

    def __init__(self, metric: Callable[..., float], *, sign: int = 1, **kwargs: Any):
        if sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1; got {sign!r}.")
        self.metric = metric
        self.sign = sign
        self.kwargs = kwargs

    def __call__(
        self, estimator: Any, X: Any, y: Any = None, sample_weight: Any = None
    ) -> float:
        """Score ``estimator`` on ``(X, y)``; greater is better."""
        y_correct, confidence = _targets_and_confidence(estimator, X, y)
        value = self.metric(
            y_correct, confidence, sample_weight=sample_weight, **self.kwargs
        )
        return float(self.sign * value)

    def __repr__(self) -> str:
        name = getattr(self.metric, "__name__", repr(self.metric))
        args = [name] + (["sign=-1"] if self.sign == -1 else [])
        args += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"FailureScorer({', '.join(args)})"


def make_failure_scorer(
    metric: Callable[..., float], *, greater_is_better: bool = True, **kwargs: Any
) -> FailureScorer:
    """Make a scorer from a failure metric, as ``sklearn.metrics.make_scorer``.

    The scorer follows the package conventions (docs/conventions.md).

    Parameters
    ----------
    metric : callable
        ``metric(y_correct, confidence, *, sample_weight=None, **kwargs)``.
    greater_is_better : bool, default=True
        If False the scorer returns the negated metric.
    **kwargs
        Passed to the metric.

    Returns
    -------
    scorer : FailureScorer

    Examples
    --------
    >>> from vilu_sklearn.metrics import make_failure_scorer, risk_at_coverage
    >>> make_failure_scorer(risk_at_coverage, greater_is_better=False, coverage=0.5)
    FailureScorer(risk_at_coverage, sign=-1, coverage=0.5)
    """
    return FailureScorer(metric, sign=1 if greater_is_better else -1, **kwargs)


_SCORERS: dict[str, FailureScorer] = {
    "auroc": FailureScorer(auroc),
    "aupr_error": FailureScorer(aupr_error),
    "aupr_success": FailureScorer(aupr_success),
    "neg_fpr_at_95tpr": FailureScorer(fpr_at_tpr, sign=-1, tpr=0.95),
    "neg_aurc": FailureScorer(aurc, sign=-1),
    "neg_eaurc": FailureScorer(eaurc, sign=-1),
    "neg_augrc": FailureScorer(augrc, sign=-1),
    "neg_risk_at_80coverage": FailureScorer(risk_at_coverage, sign=-1, coverage=0.8),
}


def get_scorer_names() -> list[str]:
    """Names accepted by :func:`get_scorer`.

    Lower-is-better metrics carry the ``neg_`` prefix and are negated.

    Returns
    -------
    names : list of str
        Sorted scorer names.

    Examples
    --------
    >>> from vilu_sklearn.metrics import get_scorer_names
    >>> get_scorer_names()
    ['aupr_error', 'aupr_success', 'auroc', 'neg_augrc', 'neg_aurc', 'neg_eaurc',
     'neg_fpr_at_95tpr', 'neg_risk_at_80coverage']
    """
    return sorted(_SCORERS)


def get_scorer(scoring: str | Callable[..., float]) -> Callable[..., float]:
    """Get a failure scorer by name (a copy), or return a callable unchanged.

    Scorers follow the package conventions (docs/conventions.md);
    lower-is-better metrics are negated (``neg_`` prefix).

    Parameters
    ----------
    scoring : str or callable
        One of :func:`get_scorer_names`, or a scorer callable.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)``, usable as ``GridSearchCV(scoring=...)``.

    Examples
    --------
    >>> from vilu_sklearn.metrics import get_scorer
    >>> get_scorer("neg_aurc")
    FailureScorer(aurc, sign=-1)
    """
    if callable(scoring):
        return scoring
    if isinstance(scoring, str) and scoring in _SCORERS:
        return copy.deepcopy(_SCORERS[scoring])
    raise ValueError(
        f"{scoring!r} is not a valid failure scorer name; use one of "
        f"{get_scorer_names()} or a callable scorer(estimator, X, y)."
    )


auroc_scorer = _SCORERS["auroc"]
aupr_error_scorer = _SCORERS["aupr_error"]
aupr_success_scorer = _SCORERS["aupr_success"]
neg_fpr_at_95tpr_scorer = _SCORERS["neg_fpr_at_95tpr"]
neg_aurc_scorer = _SCORERS["neg_aurc"]
neg_eaurc_scorer = _SCORERS["neg_eaurc"]
neg_augrc_scorer = _SCORERS["neg_augrc"]
neg_risk_at_80coverage_scorer = _SCORERS["neg_risk_at_80coverage"]
