"""Trust score (Jiang et al., 2018) in image-embedding space."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.neighbors import NearestNeighbors

from .._base import FitInputs
from .._constraints import positive_int, positive_real
from .._zero_shot import l2_normalize
from ._base import BaseBaseline, ThresholdPredictMixin

__all__ = ["TrustScore"]

# relative slack when comparing cumulated sample weights with k
_WEIGHT_RTOL = 1e-9


class TrustScore(ThresholdPredictMixin, BaseBaseline):
    """Trust score: distance ratio of the nearest other class to the predicted one.

    Distances are measured in image-embedding space.

    The trust score of Jiang, Kim, Guan and Gupta (NeurIPS 2018) compares, for
    a test image with predicted class ``c``, the distance to the closest class
    other than ``c`` with the distance to class ``c``::

        confidence = d_k(x, nearest other class) / d_k(x, class c)

    where ``d_k(x, S)`` is the Euclidean distance from ``x`` to its ``k``-th
    nearest neighbour in ``S`` (a robust version of the nearest-neighbour
    distance; ``k=1`` is the plain nearest neighbour; ``k`` is capped at the
    size of the class). Embeddings are L2-normalised first when
    ``normalize=True``, so distances are monotone in cosine similarity.

    Adaptation to failure prediction of a VLM: the original builds the class
    sets from labelled training data, but only ``y_correct`` is available here.
    The class sets are therefore made of the training images whose zero-shot
    prediction was correct (``y_correct = 1``), each labelled by that
    prediction (which is then its true class). The optional density filtering
    (``alpha``) of the original is not implemented. A class without any such
    training image is treated as lying as far as possible: at distance
    ``||x|| + max_i ||x_i||`` (an upper bound on the distance from ``x`` to any
    training image ``x_i``; 2 for unit vectors). So an image predicted as such
    a class gets a confidence of at most 1, and if only one class has members,
    the other-class distance is that bound. With ``sample_weight``, ``d_k`` is
    the smallest radius whose ball holds training images of total weight at least ``k``
    (integer weights act as repeated images; zero weights drop images).

    ``predict`` is 1 where the trust score exceeds 1 (the predicted class is
    nearer than any other). No ``predict_proba``: the ratio is not a
    probability. Classification mode only; prediction must use the K candidate
    texts of ``fit``.

    Conventions: ``y_correct = 1`` means the VLM's prediction was correct; the
    confidence is higher for more likely correct predictions (AUROC takes the
    successes as positive).

    Parameters
    ----------
    text_embeddings : array-like of shape (K, d), default=None
        Candidate text embeddings used when ``fit`` and the prediction methods
        get no ``X_txt``.
    mode : {"classification"}, default="classification"
        Only classification mode is supported (caption mode raises an error).
    logit_scale : float, default=100.0
        CLIP's temperature; the zero-shot prediction (an argmax) does not depend
        on it.
    normalize : bool, default=True
        L2-normalise image and text embeddings (cosine similarity, and
        distances between unit vectors).
    k : int, default=10
        Rank of the neighbour whose distance is used.
    min_dist : float, default=1e-12
        Lower bound of the denominator distance (as in the original code).
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits when computing the zero-shot
        predictions.

    Attributes
    ----------
    neighbors_ : list of NearestNeighbors or None
        One index per candidate class, None for classes without training
        members.
    class_counts_ : ndarray of shape (K,)
        Number of correctly predicted training images per class.
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
    >>> ts = TrustScore(k=5).fit(X_img, X_txt, y_correct)
    >>> bool(ts.class_counts_.sum() == y_correct.sum())
    True
    >>> ts.decision_function(X_img[:3]).shape
    (3,)
    """

    _caption_support = False
    _fixed_candidates = True
    _predict_threshold = 1.0
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "k": [positive_int()],
        "min_dist": [positive_real()],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        logit_scale: float = 100.0,
        normalize: bool = True,
        k: int = 10,
        min_dist: float = 1e-12,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.k = k
        self.min_dist = min_dist
        self.predict_batch_size = predict_batch_size

    def _points(self, X_img: np.ndarray) -> np.ndarray:
        X = np.asarray(X_img, dtype=np.float64)
        return l2_normalize(X) if self.normalize else X

    def _predicted(self, X_img: np.ndarray, texts: np.ndarray) -> np.ndarray:
        pred = np.empty(X_img.shape[0], dtype=np.int64)
        for sl, logits in self._blocks(X_img, texts):
            pred[sl] = logits.argmax(axis=1)
        return pred

    def _fit_scorer(self, inputs: FitInputs) -> None:
        assert inputs.X_txt is not None and inputs.y is not None
        K = inputs.X_txt.shape[0]
        pred = self._predicted(inputs.X_img, inputs.X_txt)
        keep = inputs.y == 1
        if inputs.sample_weight is not None:
            keep &= inputs.sample_weight > 0
        counts = np.bincount(pred[keep], minlength=K)
        points = self._points(inputs.X_img[keep])
        self._max_norm = (
            float(np.linalg.norm(points, axis=1).max()) if len(points) else 0.0
        )
        weights = None if inputs.sample_weight is None else inputs.sample_weight[keep]
        self.neighbors_: list[NearestNeighbors | None] = []
        self._class_weights: list[np.ndarray | None] = []
        for c in range(K):
            members = pred[keep] == c
            if not members.any():
                self.neighbors_.append(None)
                self._class_weights.append(None)
                continue
            self.neighbors_.append(NearestNeighbors().fit(points[members]))
            self._class_weights.append(None if weights is None else weights[members])
        self.class_counts_ = counts

    def _kth_distance(self, c: int, X: np.ndarray) -> np.ndarray:
        nn = self.neighbors_[c]
        assert nn is not None
        n_c = nn.n_samples_fit_
        w = self._class_weights[c]
        m = min(int(self.k), n_c)
        if w is None:
            return nn.kneighbors(X, m)[0][:, -1]
        target = min(float(self.k), float(w.sum()))
        while True:
            dist, idx = nn.kneighbors(X, m)
            cum = np.cumsum(w[idx], axis=1)
            reached = cum >= target * (1 - _WEIGHT_RTOL)
            if reached[:, -1].all() or m == n_c:
                break
            m = min(n_c, 2 * m)
        return dist[np.arange(len(X)), reached.argmax(axis=1)]

    def _decision_classification(
        self, X_img: np.ndarray, texts: np.ndarray
    ) -> np.ndarray:
        out = np.empty(X_img.shape[0], dtype=np.float64)
        for sl, logits in self._blocks(X_img, texts):
            pred = logits.argmax(axis=1)
            del logits
            X = self._points(X_img[sl])
            # distance to a class without members: an upper bound on distances
            far = np.linalg.norm(X, axis=1) + self._max_norm
            d_pred = far.copy()
            d_other = far
            for c, nn in enumerate(self.neighbors_):
                if nn is None:
                    continue
                d = self._kth_distance(c, X)
                own = pred == c
                d_pred[own] = d[own]
                np.minimum(d_other, np.where(own, d_other, d), out=d_other)
            out[sl] = d_other / np.maximum(d_pred, float(self.min_dist))
        return out
