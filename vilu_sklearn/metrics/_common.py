"""Input checks and the tie-grouped sufficient statistics shared by every metric.

Every metric of :mod:`vilu_sklearn.metrics` depends on the data only through the
total weight of successes and of failures at each *unique* confidence value,
sorted by decreasing confidence. :func:`_group` computes that grouping once;
the metric "kernels" then work on arrays of per-group weights of shape
``(n_resamples, n_groups)``, which is what makes the bootstrap vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import _to_numpy

# absolute tolerance (relative to the total weight) for comparisons of cumulated
# rates with a target such as tpr=0.95, so that 19/20 counts as reaching 0.95
_TOL = 1e-12


def _check_confidence(confidence: Any, name: str = "confidence") -> np.ndarray:
    """Return ``confidence`` as a finite 1-D float64 array."""
    conf = np.asarray(_to_numpy(confidence))
    if conf.ndim == 2:
        raise ValueError(
            f"{name} must be a 1-D array of shape (n_samples,); got a 2-D array of "
            f"shape {conf.shape}. If it comes from predict_proba, pass the "
            f"probability of the correct class only, e.g. proba[:, 1]."
        )
    if conf.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of shape (n_samples,); got a "
            f"{conf.ndim}-D array of shape {conf.shape}."
        )
    if conf.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must hold real numbers (a float array); got dtype {conf.dtype}."
        )
    if conf.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {conf.shape}); need >= 1 sample.")
    conf = conf.astype(np.float64)
    bad = ~np.isfinite(conf)
    if bad.any():
        raise ValueError(
            f"Input {name} contains NaN or infinity: {int(bad.sum())} non-finite "
            f"value(s), the first at index {int(np.argmax(bad))}."
        )
    return conf


def _check_y_binary(y_correct: Any, n: int) -> np.ndarray:
    """Return ``y_correct`` as int64 0/1 labels, matching ``n`` confidences.

    Stricter than the estimators' label check: metrics need to know which
    label means "correct", so only 0/1 (or False/True) are accepted, and a
    single class stays what it is.
    """
    if y_correct is None:
        raise ValueError(
            "y_correct is required: 1 where the VLM's prediction is correct, 0 "
            "where it is wrong."
        )
    if sp.issparse(y_correct):
        raise TypeError("y_correct must be a dense 1-D array; got a sparse matrix.")
    y = np.asarray(_to_numpy(y_correct))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(
            f"y_correct must be a 1-D array of shape ({n},); got shape {y.shape}."
        )
    if y.shape[0] != n:
        raise ValueError(
            f"y_correct has {y.shape[0]} labels, but confidence has {n} values "
            f"(Found input variables with inconsistent numbers of samples: "
            f"[{y.shape[0]}, {n}])."
        )
    if y.dtype.kind not in "biuf" or not np.all(np.isin(y, (0, 1))):
        values = np.unique(y.astype(object) if y.dtype.kind == "O" else y)
        shown = ", ".join(map(repr, values[:5].tolist())) + (
            ", ..." if len(values) > 5 else ""
        )
        raise ValueError(
            "y_correct must be binary: 1 (or True) where the VLM's prediction is "
            f"correct, 0 (or False) where it is wrong; got dtype {y.dtype} with "
            f"{len(values)} distinct value(s): {shown}."
        )
    return y.astype(np.int64)


def _check_inputs(
    y_correct: Any, confidence: Any, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``(y_correct, confidence, sample_weight)`` of a failure metric.

    Returns int64 labels, float64 confidences and float64 weights (ones when
    ``sample_weight`` is None).
    """
    conf = _check_confidence(confidence)
    n = conf.shape[0]
    y = _check_y_binary(y_correct, n)
    if sample_weight is None:
        return y, conf, np.ones(n)
    w = np.asarray(_to_numpy(sample_weight))
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(
            f"sample_weight must be a 1-D array of shape ({n},); got shape {w.shape}."
        )
    if w.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must hold numbers; got dtype {w.dtype}.")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative.")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to 0: at least one weight must be > 0.")
    return y, conf, w


@dataclass(frozen=True)
class _Groups:
    """Samples sorted by decreasing confidence, cut at unique confidence values."""

    order: np.ndarray  # indices sorting the samples by decreasing confidence
    starts: np.ndarray  # first sorted position of each group
    thresholds: np.ndarray  # unique confidence values, decreasing
    y_sorted: np.ndarray  # float64 labels in sorted order
    w_sorted: np.ndarray  # float64 weights in sorted order

    def sums(self, weights_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-group weight of successes and failures.

        ``weights_sorted`` has shape ``(n_samples,)`` or ``(B, n_samples)``, in
        sorted order; the results have shape ``(B, n_groups)``.
        """
        W = np.atleast_2d(weights_sorted)
        wy = W * self.y_sorted
        pos = np.add.reduceat(wy, self.starts, axis=1)
        neg = np.add.reduceat(W - wy, self.starts, axis=1)
        return pos, neg


def _group(y: np.ndarray, conf: np.ndarray, w: np.ndarray) -> _Groups:
    """Group samples by unique confidence, in decreasing order of confidence."""
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    return _Groups(
        order=order,
        starts=starts,
        thresholds=c[starts],
        y_sorted=y[order].astype(np.float64),
        w_sorted=w[order],
    )


def _grouped_stats(
    y_correct: Any, confidence: Any, sample_weight: Any = None
) -> tuple[_Groups, np.ndarray, np.ndarray]:
    """Validate the inputs and return the groups and their (1, G) weights."""
    y, conf, w = _check_inputs(y_correct, confidence, sample_weight)
    groups = _group(y, conf, w)
    pos, neg = groups.sums(groups.w_sorted)
    return groups, pos, neg


def _require_both_classes(pos: np.ndarray, neg: np.ndarray, metric: str) -> None:
    """Raise the single-class error of ranking metrics."""
    P, N = pos.sum(), neg.sum()
    if P <= 0 or N <= 0:
        which = "1 (correct)" if N <= 0 else "0 (wrong)"
        raise ValueError(
            f"{metric} is undefined: y_correct holds only one class ({which}, "
            "counting samples with positive weight), i.e. the VLM is always "
            f"{'right' if N <= 0 else 'wrong'} on this data. Failure prediction "
            "needs both correct and wrong predictions."
        )


def _check_fraction(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Check a rate parameter (tpr, coverage, risk) in (0, 1] or [0, 1]."""
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    v = float(value) if ok else np.nan
    low_ok = v >= 0 if allow_zero else v > 0
    if not (np.isfinite(v) and low_ok and v <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name} must be a number in {interval}; got {value!r}.")
    return v
