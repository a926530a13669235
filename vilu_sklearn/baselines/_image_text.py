"""Image-text confidence plus an image-image term: TrustVLM and ICPE.

Both add to the VLM's maximum softmax probability a term measured in the image
embedding space against the training images of the predicted class, and tune
their one hyper-parameter on a validation split of the training data inside
``fit``. Implemented from the papers; no code of the authors is used.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import StrOptions

from .._base import FitInputs
from .._constraints import NumberInterval
from .._persistence import register_estimator
from ._base import (
    CLASSIFICATION_TEXTS_DOC,
    BaseBaseline,
    fill_doc,
    softmax_inplace,
)
from ._image_space import (
    best_by_auroc,
    image_points,
    labelled_images,
    validation_split,
)
from ._training_free import max_softmax_inplace

__all__ = ["TrustVLM", "ICPE"]

_CLASSIFICATION_PARAMS = (
    CLASSIFICATION_TEXTS_DOC
    + """
    logit_scale : float, default=100.0
        CLIP's temperature: ``softmax(logit_scale * cos)``.
    normalize : bool, default=True
        L2-normalise image and text embeddings."""
)

_TUNED_PARAMS = """validation_fraction : float in (0, 1), default=0.2
        Share of the training data held out (stratified by ``y_correct``) to
        tune the hyper-parameter when it is ``"auto"``; the final fit then
        uses all the training data.
    random_state : int, RandomState instance or None, default=0
        Seed of the validation split."""

_SHARED_ATTRIBUTES = """validation_aurocs_ : ndarray or None
        Validation AUROC of each candidate value (None when not tuned).
    classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels: the first means the VLM is wrong, the second
        that it is right.
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d)
        Candidate texts seen in ``fit`` (float64)."""

_CLASS_SETS = """Class labels: the papers average (TrustVLM) or model (ICPE) labelled
    training images of each class; only ``y_correct`` is known here, so the
    class sets are the training images the VLM classified correctly, each
    labelled with its predicted class (which is then its true class)."""


_doc = fill_doc(
    classification_params=_CLASSIFICATION_PARAMS,
    tuned_params=_TUNED_PARAMS,
    shared_attributes=_SHARED_ATTRIBUTES,
    class_sets=_CLASS_SETS,
)


class _TunedImageText(BaseBaseline):
    """MSP + image-space term, one hyper-parameter tuned on a validation split.

    Subclasses define ``_tuned`` (the parameter's name), ``_candidates``,
    ``_fit_state(inputs, value) -> state`` and ``_image_term(state, X, pred)``
    (the second summand for normalised rows ``X`` predicted as ``pred``), and
    ``_combine(msp, term, value)``.
    """

    _caption_support = False
    _fixed_candidates = True
    _unseen_classes = "n/a"  # prototypes / Gaussians of the fit's classes
    _tuned: ClassVar[str] = ""

    validation_fraction: float
    random_state: Any

    def _candidates(self, inputs: FitInputs) -> list[Any]:  # pragma: no cover
        raise NotImplementedError

    def _fit_state(self, inputs: FitInputs, value: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _image_term(
        self, state: Any, X: np.ndarray, pred: np.ndarray
    ) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _combine(self, msp: np.ndarray, term: np.ndarray, value: Any) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def _parts(
        self, state: Any, X_img: np.ndarray, texts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """MSP and image term of every row (block by block)."""
        msp = np.empty(X_img.shape[0])
        term = np.empty(X_img.shape[0])
        for sl, logits in self._blocks(X_img, texts):
            pred = logits.argmax(axis=1)
            msp[sl] = max_softmax_inplace(logits)
            X = image_points(X_img[sl], bool(self.normalize))
            term[sl] = self._image_term(state, X, pred)
        return msp, term

    def _fit_scorer(self, inputs: FitInputs) -> None:
        assert inputs.X_txt is not None and inputs.y is not None
        value = getattr(self, self._tuned)
        self.validation_aurocs_: np.ndarray | None = None
        if value == "auto":
            split = validation_split(
                inputs, float(self.validation_fraction), self.random_state
            )
            candidates = self._candidates(inputs)
            value = candidates[0]
            if split is not None:
                value = self._tune(*split, candidates)
        setattr(self, self._tuned + "_", value)
        self._state = self._fit_state(inputs, value)

    def _tune(self, fit: FitInputs, val: FitInputs, candidates: list[Any]) -> Any:
        texts = fit.X_txt
        assert texts is not None and val.y is not None
        cache: dict[Any, tuple[np.ndarray, np.ndarray]] = {}

        def scores(value: Any) -> np.ndarray:
            key = self._state_key(value)
            if key not in cache:
                state = self._fit_state(fit, value)
                cache[key] = self._parts(state, val.X_img, texts)
            return self._combine(*cache[key], value)

        best, self.validation_aurocs_ = best_by_auroc(
            candidates, scores, val.y, val.sample_weight
        )
        return best

    def _state_key(self, value: Any) -> Any:
        """Values that share a fitted state (TrustVLM's lambdas share one)."""
        return value

    def _decision_classification(
        self, X_img: np.ndarray, texts: np.ndarray
    ) -> np.ndarray:
        msp, term = self._parts(self._state, X_img, texts)
        return self._combine(msp, term, getattr(self, self._tuned + "_"))


@register_estimator
@_doc
class TrustVLM(_TunedImageText):
    """TrustVLM (Dong et al., 2025): MSP plus similarity to an image prototype.

    The confidence of an image ``x`` predicted as class ``c`` is::

        max_k softmax(logit_scale * cos(x, t_k)) + lbd * cos(x, P_c)

    where ``P_c`` is the visual prototype of class ``c``: the L2-normalised
    mean of the (normalised) image embeddings of its training images. The
    paper builds the prototypes in the image space of the VLM itself or of an
    auxiliary encoder (DINOv2); only the VLM's embeddings are available here,
    so the prototypes live in CLIP's own image space. A class without
    prototype contributes ``cos = 0``.

    {class_sets}

    The paper's default weight is ``lbd = 1``; with ``lbd="auto"`` (default)
    ``fit`` picks ``lbd`` from (1, 0, 0.25, 0.5, 2, 4, 8) by AUROC on a held-out
    validation split of the training data (ties go to 1), then rebuilds the
    prototypes from all the training data. Classification mode only;
    prediction must use the K candidate texts of ``fit``. No ``predict`` nor
    ``predict_proba``.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {classification_params}
    lbd : float >= 0 or "auto", default="auto"
        Weight of the image-image similarity (``"auto"``: tuned).
    {tuned_params}
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits.

    Attributes
    ----------
    lbd_ : float
        The weight used.
    prototypes_ : ndarray of shape (K, d)
        Unit-norm class prototypes (zero rows for classes without images).
    {shared_attributes}

    References
    ----------
    .. [1] H. Dong, M. Liu, J. Liang, E. Chatzi and O. Fink. "To Trust Or Not
       To Trust Your Vision-Language Model's Prediction", arXiv:2505.23745,
       2025.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import TrustVLM
    >>> X_txt = np.eye(2)
    >>> X = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])
    >>> tv = TrustVLM(lbd=1.0, logit_scale=1.0).fit(X, X_txt, [1, 1, 1, 0])
    >>> tv.prototypes_.round(4)   # class 1: mean of (.6, .8) and (0, 1);
    ...                           # the failure (.8, .6) is left out
    array([[1.    , 0.    ],
           [0.3162, 0.9487]])
    >>> tv.decision_function(X[:1]).round(4)   # e / (e + 1) + 1
    array([1.7311])
    """

    _tuned = "lbd"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "lbd": [
            NumberInterval(numbers.Real, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "validation_fraction": [NumberInterval(numbers.Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }
    _LBD_GRID = (1.0, 0.0, 0.25, 0.5, 2.0, 4.0, 8.0)

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        logit_scale: float = 100.0,
        normalize: bool = True,
        lbd: float | str = "auto",
        validation_fraction: float = 0.2,
        random_state: Any = 0,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.lbd = lbd
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.predict_batch_size = predict_batch_size

    def _candidates(self, inputs: FitInputs) -> list[Any]:
        return list(self._LBD_GRID)

    def _state_key(self, value: Any) -> Any:
        return None

    def _fit_state(self, inputs: FitInputs, value: Any) -> np.ndarray:
        assert inputs.X_txt is not None
        K, d = inputs.X_txt.shape[0], inputs.X_img.shape[1]
        points, labels, weights = labelled_images(self, inputs)
        w = np.ones(len(points)) if weights is None else weights
        sums = np.zeros((K, d))
        np.add.at(sums, labels, points * w[:, None])
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        prototypes = np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0)
        self.prototypes_ = prototypes
        return prototypes

    def _image_term(
        self, state: np.ndarray, X: np.ndarray, pred: np.ndarray
    ) -> np.ndarray:
        norms = np.linalg.norm(X, axis=1)
        sim = np.einsum("ij,ij->i", X, state[pred])
        return np.divide(sim, norms, out=np.zeros_like(sim), where=norms > 0)

    def _combine(self, msp: np.ndarray, term: np.ndarray, value: Any) -> np.ndarray:
        return msp + float(value) * term


class _Gaussians:
    """PCA projection and one Gaussian per class in the projected space."""

    def __init__(
        self,
        points: np.ndarray,
        labels: np.ndarray,
        w: np.ndarray,
        K: int,
        rank: int,
        reg: float,
    ) -> None:
        mean = w @ points / w.sum()
        dev = points - mean
        cov = (dev * w[:, None]).T @ dev / w.sum()
        evals, evecs = np.linalg.eigh(cov)
        self.mean = mean
        self.components = evecs[:, ::-1][:, :rank]  # (d, r), largest first
        Z = dev @ self.components
        self.present = np.zeros(K, dtype=bool)
        self.means = np.zeros((K, rank))
        self.whiten = np.zeros((K, rank, rank))
        self.logdet = np.zeros(K)
        for c in range(K):
            rows = labels == c
            if rows.sum() < 2:
                continue
            wc = w[rows]
            mu = wc @ Z[rows] / wc.sum()
            dz = Z[rows] - mu
            cov_c = (dz * wc[:, None]).T @ dz / wc.sum() + reg * np.eye(rank)
            ev, V = np.linalg.eigh(cov_c)
            ev = np.maximum(ev, np.finfo(np.float64).tiny)
            self.present[c] = True
            self.means[c] = mu
            self.whiten[c] = V / np.sqrt(ev)[None, :]
            self.logdet[c] = np.log(ev).sum()

    _ARRAYS = ("mean", "components", "present", "means", "whiten", "logdet")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted arrays, by name (what ICPE saves)."""
        return {name: getattr(self, name) for name in self._ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> _Gaussians:
        """Rebuild from :meth:`to_arrays`' output, checking names and types."""
        if set(arrays) != set(cls._ARRAYS) or not all(
            isinstance(v, np.ndarray) for v in arrays.values()
        ):
            raise ValueError(
                f"Malformed ICPE state: expected the arrays {list(cls._ARRAYS)}."
            )
        obj = cls.__new__(cls)
        obj.__dict__.update(arrays)
        return obj

    def log_pdf(self, X: np.ndarray) -> np.ndarray:
        """(rows, K) log-densities; -inf for classes without a Gaussian."""
        Z = (X - self.mean) @ self.components
        r = Z.shape[1]
        out = np.full((len(X), len(self.present)), -np.inf)
        for c in np.flatnonzero(self.present):
            q = (Z - self.means[c]) @ self.whiten[c]
            maha = np.einsum("ij,ij->i", q, q)
            out[:, c] = -0.5 * (maha + self.logdet[c] + r * math.log(2 * math.pi))
        return out


@register_estimator
@_doc
class ICPE(_TunedImageText):
    """ICPE (Lin et al., 2025): MSP plus a softmax of class-conditional densities.

    Training-free intra-class probabilistic embeddings. The (normalised) image
    embeddings of the class-set images (the correctly predicted training
    images, see below) are projected on their first ``n_components`` principal
    axes (PCA, fitted on those images only); one Gaussian (mean and full
    covariance, plus ``reg_covar`` on the diagonal) is fitted per class in that
    space. The confidence of an image ``x`` predicted as class ``c`` is::

        0.5 * (max_k softmax(logit_scale * cos(x, t_k))
               + softmax_j(log N(PCA(x); mu_j, S_j))_c)

    the average of the VLM's maximum softmax probability and the share of the
    predicted class in the softmax of the log-densities (the authors' code).
    Classes with fewer than 2 training images get no Gaussian (they are left
    out of the softmax; an image predicted as one scores ``0.5 * MSP``).

    {class_sets}

    The paper's code uses 128 components; with ``n_components="auto"``
    (default) ``fit`` picks the rank from (128, 64, 32, 16, 8) (capped at
    ``d`` and at the number of class-set images minus 1) by AUROC on a
    held-out validation split of the training data, then refits on all of
    it. The authors apply PCA to the raw embeddings; here they are
    L2-normalised first when ``normalize=True`` (the package's convention).
    Classification mode only; prediction must use the K candidate texts of
    ``fit``. No ``predict`` nor ``predict_proba``.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {classification_params}
    n_components : int or "auto", default="auto"
        PCA rank (capped as above; ``"auto"``: tuned).
    reg_covar : float, default=1e-8
        Added to the diagonal of each class covariance (the authors' value).
    {tuned_params}
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits.

    Attributes
    ----------
    n_components_ : int
        The PCA rank used.
    {shared_attributes}

    References
    ----------
    .. [1] Z. Lin, M. Haghighat, W. Browne and D. Miller. "Intra-Class
       Probabilistic Embeddings for Uncertainty Estimation in Vision-Language
       Models", WACV 2026, arXiv:2511.22019.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import correctness
    >>> from vilu_sklearn.baselines import ICPE
    >>> rng = np.random.default_rng(0)
    >>> X_txt = rng.normal(size=(3, 8))
    >>> labels = rng.integers(0, 3, size=300)
    >>> X = X_txt[labels] + rng.normal(size=(300, 8))
    >>> icpe = ICPE().fit(X, X_txt, correctness(X, X_txt, labels))
    >>> icpe.n_components_ <= 8
    True
    >>> bool(np.all(icpe.decision_function(X) <= 1))
    True
    """

    _tuned = "n_components"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "n_components": [
            NumberInterval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "reg_covar": [NumberInterval(numbers.Real, 0, None, closed="left")],
        "validation_fraction": [NumberInterval(numbers.Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }
    _RANK_GRID = (128, 64, 32, 16, 8)

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        logit_scale: float = 100.0,
        normalize: bool = True,
        n_components: int | str = "auto",
        reg_covar: float = 1e-8,
        validation_fraction: float = 0.2,
        random_state: Any = 0,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.n_components = n_components
        self.reg_covar = reg_covar
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.predict_batch_size = predict_batch_size

    def _max_rank(self, inputs: FitInputs) -> int:
        assert inputs.y is not None
        n = int((inputs.y == 1).sum())
        return max(1, min(inputs.X_img.shape[1], n - 1))

    def _candidates(self, inputs: FitInputs) -> list[Any]:
        top = self._max_rank(inputs)
        ranks = [min(r, top) for r in self._RANK_GRID]
        return list(dict.fromkeys(ranks))  # unique, in order

    def _fit_state(self, inputs: FitInputs, value: Any) -> _Gaussians:
        assert inputs.X_txt is not None
        points, labels, weights = labelled_images(self, inputs)
        if len(points) < 2:
            raise ValueError(
                "ICPE needs at least 2 correctly predicted training images "
                f"(y_correct = 1); got {len(points)}."
            )
        w = np.ones(len(points)) if weights is None else weights
        rank = max(1, min(int(value), points.shape[1], len(points) - 1))
        return _Gaussians(
            points, labels, w, inputs.X_txt.shape[0], rank, float(self.reg_covar)
        )

    def _image_term(
        self, state: _Gaussians, X: np.ndarray, pred: np.ndarray
    ) -> np.ndarray:
        log_pdf = state.log_pdf(X)
        if not state.present.any():  # pragma: no cover - _fit_state needs 2 images
            return np.zeros(len(X))
        present = log_pdf[:, state.present]
        p = softmax_inplace(present.copy())
        full = np.zeros_like(log_pdf)
        full[:, state.present] = p
        return full[np.arange(len(X)), pred]

    def _combine(self, msp: np.ndarray, term: np.ndarray, value: Any) -> np.ndarray:
        return 0.5 * (msp + term)

    # saved state (vilu_sklearn.load): the Gaussians as their arrays
    def _get_persist_state(self) -> dict[str, Any]:
        state = super()._get_persist_state()
        if isinstance(state.get("_state"), _Gaussians):
            state["_state"] = state["_state"].to_arrays()
        return state

    def _set_persist_state(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("_state"), dict):
            state = {**state, "_state": _Gaussians.from_arrays(state["_state"])}
        super()._set_persist_state(state)
