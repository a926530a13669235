"""Helpers of the baselines that look at the image-embedding space.

TrustScore, KNN, Mahalanobis, RelativeMahalanobis, TrustVLM and ICPE need
distances between images, class sets of training images, or a validation split
to tune a hyper-parameter. They share:

* :func:`labelled_images`: the class sets. Only ``y_correct`` is known, not the
  true class of a training image, so a class set is made of the training images
  the VLM classified correctly, each labelled with its (then true) predicted
  class. Wrongly predicted training images have an unknown class and are left
  out.
* :func:`kth_distances` and :func:`grouped_kth_distances`: distance to the
  k-th nearest reference row (of each group of rows), computed in float32
  blocks (memory bounded by ``_BLOCK_ELEMENTS``) with the selected distance
  recomputed exactly in float64.
* :func:`validation_split` and :func:`best_by_auroc`: tuning on a held-out part
  of the training data inside ``fit``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from .._base import FitInputs
from .._zero_shot import l2_normalize

__all__: list[str] = []

# float32 elements of one (rows, n_ref) block of squared distances: 32 MiB
_BLOCK_ELEMENTS = 1 << 23
# relative slack when comparing cumulated sample weights with k
_WEIGHT_RTOL = 1e-9


def image_points(X: Any, normalize: bool) -> np.ndarray:
    """Float64 copy of image rows, L2-normalised when ``normalize``."""
    X = np.asarray(X, dtype=np.float64)
    return l2_normalize(X) if normalize else X


def predicted_classes(estimator: Any, X_img: Any, texts: np.ndarray) -> np.ndarray:
    """The VLM's zero-shot predictions (argmax of the logits), block by block."""
    pred = np.empty(X_img.shape[0], dtype=np.int64)
    for sl, logits in estimator._blocks(X_img, texts):
        pred[sl] = logits.argmax(axis=1)
    return pred


def labelled_images(
    estimator: Any, inputs: FitInputs
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Correctly predicted training images, labelled with their predicted class.

    Returns the (normalised) points, their class indices and their sample
    weights (None without ``sample_weight``); rows of zero weight are dropped.
    """
    assert inputs.X_txt is not None and inputs.y is not None
    pred = predicted_classes(estimator, inputs.X_img, inputs.X_txt)
    keep = inputs.y == 1
    if inputs.sample_weight is not None:
        keep &= inputs.sample_weight > 0
    idx = np.flatnonzero(keep)
    points = image_points(inputs.X_img[idx], bool(estimator.normalize))
    weights = None if inputs.sample_weight is None else inputs.sample_weight[idx]
    return points, pred[idx], weights


def _weighted_kth(
    d2: np.ndarray, weights: np.ndarray, k: float
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the smallest radius whose ball holds weight >= k, per row."""
    order = np.argsort(d2, axis=1, kind="stable")
    cum = np.cumsum(weights[order], axis=1)
    target = min(float(k), float(weights.sum()))
    pos = (cum >= target * (1 - _WEIGHT_RTOL)).argmax(axis=1)
    return order[np.arange(len(d2)), pos], pos


def kth_distances(
    X: np.ndarray,
    ref: np.ndarray,
    k: int,
    *,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Euclidean distance from each row of ``X`` to its k-th nearest row of ``ref``.

    ``k`` is capped at ``len(ref)``. With ``weights``, the k-th neighbour is
    the nearest one at which the cumulated weight reaches ``k`` (integer
    weights act as repeated rows). See :func:`grouped_kth_distances`.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines._image_space import kth_distances
    >>> ref = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    >>> kth_distances(np.array([[0.0, 1.0]]), ref, 2)   # 1, sqrt(10), 4
    array([3.16227766])
    """
    bounds = np.array([0, len(ref)])
    return grouped_kth_distances(X, ref, bounds, k, weights=weights)[:, 0]


def grouped_kth_distances(
    X: np.ndarray,
    ref: np.ndarray,
    bounds: np.ndarray,
    k: int,
    *,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """k-th nearest-neighbour distances to each group of consecutive ``ref`` rows.

    Group ``g`` is ``ref[bounds[g]:bounds[g + 1]]`` (non-empty); ``k`` is
    capped at the group's size. The neighbours of one block of rows of ``X``
    are ranked in float32 by ``|r|^2 - 2 x.r`` (the squared distance minus
    ``|x|^2``; at most ``_BLOCK_ELEMENTS`` values at a time); the distance to
    each selected neighbour is then recomputed in float64, so the result is
    exact up to ties within float32 rounding.

    Returns
    -------
    distances : ndarray of shape (n, n_groups)
    """
    X = np.asarray(X, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    ref32 = ref.astype(np.float32)
    ref_sq = np.einsum("ij,ij->i", ref32, ref32)
    ref32 *= -2.0
    rows = max(1, min(4096, _BLOCK_ELEMENTS // max(len(ref), 1)))
    out = np.empty((X.shape[0], len(bounds) - 1), dtype=np.float64)
    for start in range(0, X.shape[0], rows):
        xb = X[start : start + rows]
        # |r|^2 - 2 x.r: the squared distance minus |x|^2, which is constant
        # along a row and so does not change the neighbours' order
        d2 = xb.astype(np.float32) @ ref32.T
        d2 += ref_sq[None, :]
        for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            block = d2[:, lo:hi]
            if weights is None:
                kk = min(int(k), hi - lo)
                # partition on values is several times faster than argpartition;
                # the neighbour is then found by value
                kth = np.partition(block, kk - 1, axis=1)[:, kk - 1]
                idx = (block == kth[:, None]).argmax(axis=1)
            else:
                idx = _weighted_kth(block, weights[lo:hi], k)[0]
            out[start : start + rows, g] = np.linalg.norm(xb - ref[lo + idx], axis=1)
    return out


def validation_split(
    inputs: FitInputs, fraction: float, random_state: Any
) -> tuple[FitInputs, FitInputs] | None:
    """Stratified split of the training inputs into (fit part, validation part).

    Returns None when either part would lack a correct or a wrong sample (too
    little data to tune anything: the caller keeps its default).
    """
    assert inputs.y is not None
    y = inputs.y
    n_minor = int(min((y == 0).sum(), (y == 1).sum()))
    n_val = int(round(fraction * len(y)))
    if n_minor < 4 or n_val < 2 or len(y) - n_val < 2:
        return None
    idx = np.arange(len(y))
    tr, va = train_test_split(
        idx, test_size=n_val, stratify=y, random_state=random_state
    )
    tr, va = np.sort(tr), np.sort(va)

    def part(rows: np.ndarray) -> FitInputs:
        sw, labels = inputs.sample_weight, inputs.labels
        return inputs._replace(
            X_img=inputs.X_img[rows],
            y=y[rows],
            sample_weight=None if sw is None else sw[rows],
            labels=None if labels is None else labels[rows],
        )

    return part(tr), part(va)


def best_by_auroc(
    candidates: Sequence[Any],
    scores_of: Callable[[Any], np.ndarray],
    y_val: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> tuple[Any, np.ndarray]:
    """The candidate whose validation scores have the highest AUROC.

    Ties go to the earliest candidate. Returns it with every candidate's AUROC.
    """
    aurocs = np.array(
        [
            roc_auc_score(y_val, scores_of(c), sample_weight=sample_weight)
            for c in candidates
        ]
    )
    return candidates[int(np.argmax(aurocs))], aurocs
