"""Feature-space detectors on image embeddings: KNN, Mahalanobis, relative Mahalanobis.

Out-of-distribution scores (as in pytorch-ood) used as failure predictors: an
image far from the training images, or from the class means, is more likely
to be misclassified. Implemented from the papers; no code of the authors.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, ClassVar

import numpy as np
from scipy.linalg import pinvh
from sklearn.utils._param_validation import StrOptions

from .._base import FitInputs
from .._constraints import NumberInterval
from .._persistence import register_estimator
from ._base import (
    CAPTION_CONSTRAINTS,
    CLASSIFICATION_TEXTS_DOC,
    BaseBaseline,
    fill_doc,
)
from ._image_space import image_points, kth_distances, labelled_images

__all__ = ["KNN", "Mahalanobis", "RelativeMahalanobis"]

_CLASSIFICATION_PARAMS = (
    CLASSIFICATION_TEXTS_DOC
    + """
    logit_scale : float, default=100.0
        CLIP's temperature; only the zero-shot prediction (an argmax, which
        does not depend on it) is used.
    normalize : bool, default=True
        L2-normalise image and text embeddings."""
)

_SHARED_ATTRIBUTES = """classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels: the first means the VLM is wrong, the second
        that it is right.
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d) or None
        Candidate texts seen in ``fit`` (float64)."""


_doc = fill_doc(
    classification_params=_CLASSIFICATION_PARAMS, shared_attributes=_SHARED_ATTRIBUTES
)


@register_estimator
@_doc
class KNN(BaseBaseline):
    """Deep nearest neighbours (Sun et al., 2022): minus the k-th neighbour distance.

    The confidence of a test image is ``-||z - z_(k)||``, the negative
    Euclidean distance from its L2-normalised image embedding ``z`` to the
    ``k``-th nearest normalised training image embedding. With the paper's
    setting (``reference="all"``) every training image is a neighbour: the
    score needs no label, not even ``y_correct``. ``reference="correct"`` (an
    adaptation to failure prediction, not the paper's) keeps only the training
    images the VLM classified correctly.

    Distances are computed in float32 blocks of at most 2**23 elements against
    all training rows (exact brute force; the selected distance is recomputed
    in float64), so 10,000 test images against 40,000 training images of
    width 384 take about 6 s of one CPU core. ``fit`` keeps a float64 copy of
    the reference images. With ``sample_weight``, the k-th neighbour is where
    the cumulated weight reaches ``k`` (integer weights act as repeated
    images; slower: each block is fully sorted).

    Also works in caption mode (the reference images are the training images;
    captions are not used). No ``predict`` nor ``predict_proba``: a distance
    has no natural threshold and is not a probability.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    text_embeddings : array-like of shape (K, d), default=None
        Candidate text embeddings used when ``fit`` and the prediction methods
        get no ``X_txt`` (classification mode; they are validated but the score
        does not use them).
    mode : {{"classification", "caption"}}, default="classification"
        Call convention; see :class:`MSP`.
    caption_group_size : int, default=1024
        Caption mode: candidates per group (unused by the score).
    logit_scale : float, default=100.0
        CLIP's temperature (unused by the score; kept for the shared interface).
    normalize : bool, default=True
        L2-normalise the image embeddings (the paper's choice; essential).
    k : int, default=50
        Rank of the neighbour (the paper's value for CIFAR-10; capped at the
        number of reference images).
    reference : {{"all", "correct"}}, default="all"
        Neighbours among all training images (paper) or only the correctly
        predicted ones (classification mode only).
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits (unused by the score).

    Attributes
    ----------
    reference_ : ndarray of shape (n_ref, d)
        The (normalised) reference images.
    {shared_attributes}

    References
    ----------
    .. [1] Y. Sun, Y. Ming, X. Zhu and Y. Li. "Out-of-Distribution Detection
       with Deep Nearest Neighbors", ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import KNN
    >>> X_txt = np.eye(2)
    >>> X_train = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> knn = KNN(k=1).fit(X_train, X_txt, [1, 1, 0])
    >>> knn.decision_function(np.array([[1.0, 0.0], [-1.0, 0.0]])).round(4)
    array([-0.    , -1.4142])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        **CAPTION_CONSTRAINTS,
        "k": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "reference": [StrOptions({"all", "correct"})],
    }

    def _supervision_level(self) -> str:
        """The benchmark's supervision: y_correct only with reference="correct"."""
        return "y_correct" if self.reference == "correct" else "none"

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        caption_group_size: int = 1024,
        logit_scale: float = 100.0,
        normalize: bool = True,
        k: int = 50,
        reference: str = "all",
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.caption_group_size = caption_group_size
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.k = k
        self.reference = reference
        self.predict_batch_size = predict_batch_size

    def _check_extra_params(self) -> None:
        if self.mode == "caption" and self.reference == "correct":
            raise ValueError(
                "reference='correct' needs y_correct, which caption mode does not "
                "give to fit; use reference='all' in caption mode."
            )

    def _fit_scorer(self, inputs: FitInputs) -> None:
        if self.reference == "correct":
            points, _, weights = labelled_images(self, inputs)
        else:
            keep = np.arange(inputs.X_img.shape[0])
            weights = None
            if inputs.sample_weight is not None:
                keep = np.flatnonzero(inputs.sample_weight > 0)
                weights = inputs.sample_weight[keep]
            points = image_points(inputs.X_img[keep], bool(self.normalize))
        if len(points) == 0:
            raise ValueError(
                "KNN(reference='correct') needs at least one correctly predicted "
                "training image (y_correct = 1)."
            )
        self.reference_ = points
        self._weights = weights

    def _decision_classification(
        self, X_img: np.ndarray, texts: np.ndarray
    ) -> np.ndarray:
        X = image_points(X_img, bool(self.normalize))
        return -kth_distances(X, self.reference_, int(self.k), weights=self._weights)


def _weighted_mean_cov(
    X: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and (biased, maximum-likelihood) covariance of the rows."""
    w = np.ones(len(X)) if w is None else w
    mean = w @ X / w.sum()
    dev = X - mean
    return mean, (dev * w[:, None]).T @ dev / w.sum()


@register_estimator
@_doc
class Mahalanobis(BaseBaseline):
    """Mahalanobis distance to the class means (Lee et al., 2018), shared covariance.

    On L2-normalised image embeddings, with class means ``mu_c`` and one
    covariance ``S`` shared by all classes (the within-class scatter pooled
    over classes), the confidence of a test image ``z`` is::

        -min_c (z - mu_c)^T S^+ (z - mu_c)

    (``S^+`` the pseudo-inverse), the paper's score on the final features
    without input preprocessing nor feature ensembles. ``score_class="predicted"``
    (an adaptation, not the paper's) measures the distance to the VLM's
    predicted class instead of the closest class.

    Class labels: only ``y_correct`` is known, so the class sets are the
    training images the VLM classified correctly, each labelled with its
    predicted class (which is then its true class). Classes without such an
    image have no mean and are skipped (with ``score_class="predicted"``, an
    image predicted as such a class gets the distance to the closest class).
    Classification mode only; prediction must use the K candidate texts of
    ``fit``. No ``predict`` nor ``predict_proba``.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {classification_params}
    score_class : {{"closest", "predicted"}}, default="closest"
        Distance to the closest class mean (paper) or to the predicted class's.
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits.

    Attributes
    ----------
    means_ : ndarray of shape (K, d)
        Class means (NaN rows for classes without members).
    precision_ : ndarray of shape (d, d)
        Pseudo-inverse of the shared covariance.
    class_counts_ : ndarray of shape (K,)
        Correctly predicted training images per class.
    {shared_attributes}

    References
    ----------
    .. [1] K. Lee, K. Lee, H. Lee and J. Shin. "A Simple Unified Framework for
       Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS
       2018.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import Mahalanobis
    >>> X_txt = np.eye(2)
    >>> X = np.array([[2.0, 0.1], [2.0, -0.1], [0.1, 2.0], [-0.1, 2.0], [1.0, 1.1]])
    >>> maha = Mahalanobis(normalize=False).fit(X, X_txt, [1, 1, 1, 1, 0])
    >>> maha.means_                     # the failure (1, 1.1) is left out
    array([[2., 0.],
           [0., 2.]])
    >>> maha.decision_function(np.array([[2.0, 0.0], [2.0, 0.2]])).round(4)
    array([-0., -8.])
    """

    _caption_support = False
    _fixed_candidates = True
    _unseen_classes = "n/a"  # class means of the fit's classes
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "score_class": [StrOptions({"closest", "predicted"})],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        logit_scale: float = 100.0,
        normalize: bool = True,
        score_class: str = "closest",
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.score_class = score_class
        self.predict_batch_size = predict_batch_size

    def _fit_scorer(self, inputs: FitInputs) -> None:
        assert inputs.X_txt is not None
        K, d = inputs.X_txt.shape[0], inputs.X_img.shape[1]
        points, labels, weights = labelled_images(self, inputs)
        w = np.ones(len(points)) if weights is None else weights
        self.class_counts_ = np.bincount(labels, minlength=K)
        self.means_ = np.full((K, d), np.nan)
        centred = np.empty_like(points)
        for c in np.unique(labels):
            rows = labels == c
            self.means_[c] = w[rows] @ points[rows] / w[rows].sum()
            centred[rows] = points[rows] - self.means_[c]
        cov = (centred * w[:, None]).T @ centred / w.sum()
        if not np.any(cov):
            warnings.warn(
                f"{type(self).__name__}: the {len(points)} correctly predicted "
                f"training image(s) of {len(np.unique(labels))} class(es) have no "
                "spread around their class means, so the covariance is zero and "
                "the class distances are 0 for every image: the scores say "
                "nothing about failures. It needs at least two distinct correctly "
                "predicted images of one class (more data, or another baseline).",
                UserWarning,
                stacklevel=4,
            )
        self.precision_ = pinvh(cov)
        self._fit_background(inputs)

    def _fit_background(self, inputs: FitInputs) -> None:
        """Hook of :class:`RelativeMahalanobis`."""

    def _class_distances(self, X: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances (rows, K); +inf for empty classes."""
        present = ~np.isnan(self.means_[:, 0])
        XP = X @ self.precision_
        M = self.means_[present]
        MP = M @ self.precision_
        d2 = np.einsum("ij,ij->i", XP, X)[:, None] - 2 * XP @ M.T
        d2 += np.einsum("ij,ij->i", MP, M)[None, :]
        out = np.full((len(X), len(self.means_)), np.inf)
        out[:, present] = np.maximum(d2, 0.0)
        return out

    def _background_distances(self, X: np.ndarray) -> np.ndarray | float:
        return 0.0

    def _decision_classification(
        self, X_img: np.ndarray, texts: np.ndarray
    ) -> np.ndarray:
        out = np.empty(X_img.shape[0], dtype=np.float64)
        for sl, logits in self._blocks(X_img, texts):
            pred = logits.argmax(axis=1)
            del logits
            X = image_points(X_img[sl], bool(self.normalize))
            d2 = self._class_distances(X)
            d2 -= np.reshape(self._background_distances(X), (-1, 1))
            closest = d2.min(axis=1)
            if self.score_class == "predicted":
                own = d2[np.arange(len(pred)), pred]
                closest = np.where(np.isfinite(own), own, closest)
            out[sl] = -closest
        return out


@register_estimator
@_doc
class RelativeMahalanobis(Mahalanobis):
    """Relative Mahalanobis distance (Ren et al., 2021), shared covariance.

    As :class:`Mahalanobis`, minus the Mahalanobis distance to a "background"
    Gaussian fitted on all training images (correct or not; mean ``mu_0``,
    covariance ``S_0``)::

        -min_c [(z - mu_c)^T S^+ (z - mu_c) - (z - mu_0)^T S_0^+ (z - mu_0)]

    on L2-normalised image embeddings. The class means and the shared
    covariance come from the correctly predicted training images, labelled
    with their predicted class (see :class:`Mahalanobis`). Classification mode
    only. No ``predict`` nor ``predict_proba``.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {classification_params}
    score_class : {{"closest", "predicted"}}, default="closest"
        Relative distance to the closest class (paper) or the predicted class.
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits.

    Attributes
    ----------
    means_ : ndarray of shape (K, d)
        Class means (NaN rows for classes without members).
    precision_ : ndarray of shape (d, d)
        Pseudo-inverse of the shared class covariance.
    background_mean_ : ndarray of shape (d,)
        Mean of all training images.
    background_precision_ : ndarray of shape (d, d)
        Pseudo-inverse of their covariance.
    class_counts_ : ndarray of shape (K,)
        Correctly predicted training images per class.
    {shared_attributes}

    References
    ----------
    .. [1] J. Ren, S. Fort, J. Liu, A. G. Roy, S. Padhy and B. Lakshminarayanan.
       "A Simple Fix to Mahalanobis Distance for Improving Near-OOD Detection",
       arXiv:2106.09022, 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import RelativeMahalanobis
    >>> rng = np.random.default_rng(0)
    >>> X_txt = rng.normal(size=(3, 8))
    >>> X = X_txt[rng.integers(0, 3, 200)] + rng.normal(size=(200, 8))
    >>> y = rng.integers(0, 2, 200)
    >>> rmd = RelativeMahalanobis().fit(X, X_txt, y)
    >>> rmd.background_precision_.shape, rmd.decision_function(X[:2]).shape
    ((8, 8), (2,))
    """

    def _fit_background(self, inputs: FitInputs) -> None:
        keep = np.arange(inputs.X_img.shape[0])
        w = None
        if inputs.sample_weight is not None:
            keep = np.flatnonzero(inputs.sample_weight > 0)
            w = inputs.sample_weight[keep]
        points = image_points(inputs.X_img[keep], bool(self.normalize))
        self.background_mean_, cov = _weighted_mean_cov(points, w)
        self.background_precision_ = pinvh(cov)

    def _background_distances(self, X: np.ndarray) -> np.ndarray | float:
        dev = X - self.background_mean_
        return np.einsum("ij,ij->i", dev @ self.background_precision_, dev)
