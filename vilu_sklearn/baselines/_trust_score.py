"""Trust score (Jiang et al., 2018) in image-embedding space."""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np

from .._base import FitInputs
from .._constraints import NumberInterval
from .._persistence import register_estimator
from ._base import (
    CLASSIFICATION_TEXTS_DOC,
    BaseBaseline,
    ThresholdPredictMixin,
    fill_doc,
)
from ._image_space import (
    grouped_kth_distances,
    image_points,
    kth_distances,
    labelled_images,
)

__all__ = ["TrustScore"]


@register_estimator
@fill_doc(classification_texts=CLASSIFICATION_TEXTS_DOC)
class TrustScore(ThresholdPredictMixin, BaseBaseline):
    """Trust score: distance ratio of the nearest other class to the predicted one.

    Distances are measured in image-embedding space.

    The trust score of Jiang, Kim, Guan and Gupta (NeurIPS 2018) compares, for
    a test image ``x`` with predicted class ``c``, its distance to the
    "alpha-high-density set" of the closest class other than ``c`` with its
    distance to that of class ``c``::

        confidence = d(x, H_other) / (d(x, H_c) + min_dist)

    Following the authors' code (github.com/google/TrustScore), ``d(x, H)`` is
    the distance from ``x`` to its ``neighbor_rank``-th nearest member of
    ``H`` (2 there; ``neighbor_rank=1`` is the paper's set distance). The
    high-density set ``H`` of a class is its training set without the
    fraction ``alpha`` of members whose ``k``-NN radius (distance to their
    ``k``-th nearest class member, themselves included) is the largest: the
    paper's Algorithm 1 with ``k = 10``. ``alpha=0`` (default, the value of
    the authors' code and of most of the paper's experiments) keeps every
    member. Embeddings are L2-normalised first when ``normalize=True``, so
    distances are monotone in cosine similarity; distances are computed in
    float32 blocks (see :class:`KNN`).

    Class labels: the original builds the class sets from labelled training
    data, but only ``y_correct`` is available here. The class sets are
    therefore made of the training images whose zero-shot prediction was
    correct (``y_correct = 1``), each labelled by that prediction (which is
    then its true class). A class without any such training image is treated
    as lying as far as possible: at distance ``||x|| + max_i ||x_i||`` (an upper
    bound on the distance from ``x`` to any training image ``x_i``; 2 for unit
    vectors). With ``sample_weight``, the ``r``-th nearest member is where the
    cumulated weight reaches ``r`` (integer weights act as repeated images;
    zero weights drop images).

    ``predict`` is 1 where the trust score exceeds 1 (the predicted class is
    nearer than any other). No ``predict_proba``: the ratio is not a
    probability. Classification mode only; prediction must use the K candidate
    texts of ``fit``.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {classification_texts}
    logit_scale : float, default=100.0
        CLIP's temperature; the zero-shot prediction (an argmax) does not depend
        on it.
    normalize : bool, default=True
        L2-normalise image and text embeddings (cosine similarity, and
        distances between unit vectors).
    k : int, default=10
        Neighbour rank of the k-NN radius of the density filter (the paper's
        ``k``).
    alpha : float in [0, 1), default=0.0
        Fraction of each class set filtered out as low-density.
    neighbor_rank : int, default=2
        Rank of the class member whose distance scores a test image (2 in the
        authors' code; capped at the size of the set).
    min_dist : float, default=1e-12
        Added to the denominator distance (as in the authors' code).
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits when computing the zero-shot
        predictions.

    Attributes
    ----------
    class_sets_ : list of ndarray or None
        The (normalised) high-density set of each candidate class, None for
        classes without correctly predicted training images.
    class_counts_ : ndarray of shape (K,)
        Number of correctly predicted training images per class (before
        filtering).
    classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels: the first means the VLM is wrong, the second
        that it is right.
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d)
        Candidate texts seen in ``fit`` (float64).

    References
    ----------
    .. [1] H. Jiang, B. Kim, M. Guan and M. Gupta. "To Trust Or Not To Trust A
       Classifier", NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import correctness
    >>> from vilu_sklearn.baselines import TrustScore
    >>> rng = np.random.default_rng(0)
    >>> X_txt = rng.normal(size=(4, 16))
    >>> labels = rng.integers(0, 4, size=300)
    >>> X_img = X_txt[labels] + rng.normal(scale=2.0, size=(300, 16))
    >>> y_correct = correctness(X_img, X_txt, labels)
    >>> ts = TrustScore(alpha=0.1).fit(X_img, X_txt, y_correct)
    >>> bool(ts.class_counts_.sum() == y_correct.sum())
    True
    >>> ts.decision_function(X_img[:3]).shape
    (3,)
    """

    _caption_support = False
    _fixed_candidates = True
    _unseen_classes = "n/a"  # class sets of the fit's classes
    _predict_threshold = 1.0
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "k": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "alpha": [NumberInterval(numbers.Real, 0, 1, closed="left")],
        "neighbor_rank": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "min_dist": [NumberInterval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        logit_scale: float = 100.0,
        normalize: bool = True,
        k: int = 10,
        alpha: float = 0.0,
        neighbor_rank: int = 2,
        min_dist: float = 1e-12,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.k = k
        self.alpha = alpha
        self.neighbor_rank = neighbor_rank
        self.min_dist = min_dist
        self.predict_batch_size = predict_batch_size

    def _high_density(
        self, P: np.ndarray, w: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Algorithm 1 of the paper: drop the alpha-fraction of largest k-NN radii."""
        if self.alpha == 0:
            return P, w
        radii = kth_distances(P, P, int(self.k), weights=w)
        keep = radii <= np.percentile(radii, 100 * (1 - float(self.alpha)))
        return P[keep], None if w is None else w[keep]

    def _fit_scorer(self, inputs: FitInputs) -> None:
        assert inputs.X_txt is not None
        K = inputs.X_txt.shape[0]
        points, labels, weights = labelled_images(self, inputs)
        self.class_counts_ = np.bincount(labels, minlength=K)
        self._max_norm = (
            float(np.linalg.norm(points, axis=1).max()) if len(points) else 0.0
        )
        self.class_sets_: list[np.ndarray | None] = []
        sets: list[np.ndarray] = []
        set_weights: list[np.ndarray] = []
        for c in range(K):
            rows = labels == c
            if not rows.any():
                self.class_sets_.append(None)
                continue
            P, w = self._high_density(
                points[rows], None if weights is None else weights[rows]
            )
            self.class_sets_.append(P)
            sets.append(P)
            if w is not None:
                set_weights.append(w)
        # the sets one after the other, for one distance block per image block
        d = inputs.X_img.shape[1]
        self._members = np.vstack(sets) if sets else np.empty((0, d))
        self._bounds = np.cumsum([0] + [len(P) for P in sets])
        self._member_weights = None if weights is None else np.concatenate(set_weights)
        self._present = np.array([P is not None for P in self.class_sets_])

    def _decision_classification(
        self, X_img: np.ndarray, texts: np.ndarray
    ) -> np.ndarray:
        out = np.empty(X_img.shape[0], dtype=np.float64)
        for sl, logits in self._blocks(X_img, texts):
            pred = logits.argmax(axis=1)
            del logits
            X = image_points(X_img[sl], bool(self.normalize))
            # distance to a class without members: an upper bound on distances
            far = np.linalg.norm(X, axis=1) + self._max_norm
            d = np.repeat(far[:, None], len(self._present), axis=1)
            d[:, self._present] = grouped_kth_distances(
                X,
                self._members,
                self._bounds,
                int(self.neighbor_rank),
                weights=self._member_weights,
            )
            rows = np.arange(len(pred))
            d_pred = d[rows, pred].copy()
            d[rows, pred] = np.inf
            d_other = np.minimum(d.min(axis=1), far)
            out[sl] = d_other / (d_pred + float(self.min_dist))
        return out
