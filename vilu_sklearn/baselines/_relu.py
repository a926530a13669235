"""Rel-U: a data-driven relative uncertainty ``p^T D p`` (Dadalto et al., 2024).

Implemented from the paper (arXiv:2306.01710); no code of the authors is used.
"""

from __future__ import annotations

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
from ._image_space import best_by_auroc, validation_split

__all__ = ["RelU"]


@register_estimator
@fill_doc(classification_texts=CLASSIFICATION_TEXTS_DOC)
class RelU(BaseBaseline):
    """Rel-U: confidence ``-p^T D p`` with a class-pair matrix ``D`` learned in fit.

    Rel-U (Dadalto, Romanelli, Pichler and Piantanida, ICLR 2024) measures the
    uncertainty of a soft-prediction ``p = softmax(logit_scale * cos / T)`` as
    the expected dissimilarity of two labels drawn from it, ``p^T D p``, where
    ``D`` (K x K, symmetric, non-negative, zero diagonal) is learned so that the
    uncertainty is low on the training samples the VLM gets right and high on
    those it gets wrong. Minimising

        ``(1 - lbd) E[p^T D p | correct] - lbd E[p^T D p | wrong]``

    under those constraints and ``||D||_F <= 1`` has the closed-form solution

        ``D = ReLU(lbd * M_wrong - (1 - lbd) * M_correct)`` off the diagonal,
        normalised to unit Frobenius norm,

    with ``M_correct = E[p p^T | correct]`` and ``M_wrong = E[p p^T | wrong]``,
    the (weighted) means of the outer products of the softmax vectors over the
    correct and the wrong training samples. If no entry is positive, ``D`` falls
    back to ``1 - I`` (normalised), for which ``p^T D p = 1 - sum_k p_k^2`` is
    the Gini impurity: the ranking of :class:`Doctor` (``variant="alpha"``).

    As in the authors' code, the temperature ``T`` and ``lbd`` are
    hyper-parameters chosen on held-out data: with ``"auto"`` (default) ``fit``
    holds out a stratified ``validation_fraction`` of the training data, learns
    ``D`` on the rest for every ``T`` in (1, 0.1, 0.2, 0.5, 2, 5, 10) and
    ``lbd`` in (0.5, 0, 0.1, ..., 1), keeps the pair of best validation AUROC
    (ties go to the earlier values) and learns the final ``D`` on all the
    training data. Without enough data to split (fewer than 4 samples of a
    class), ``T = 1`` and ``lbd = 0.5``.

    ``D`` is indexed by candidate, so prediction must use the K candidate texts
    of ``fit`` (in the same order); classification mode only. No ``predict``
    nor ``predict_proba``: ``-p^T D p`` has no natural threshold and is not a
    probability.

    The confidence is ``-p^T D p`` (conventions: docs/conventions.md).

    Parameters
    ----------
    {classification_texts}
    logit_scale : float, default=100.0
        CLIP's temperature (100 for OpenAI CLIP): ``p`` is
        ``softmax(logit_scale * cos(X_img, X_txt))``.
    normalize : bool, default=True
        L2-normalise image and text embeddings (cosine similarity).
    temperature : float or "auto", default="auto"
        Divides the logits before the softmax (``"auto"``: tuned).
    lbd : float or "auto", default="auto"
        Trade-off ``lambda`` in [0, 1] between the wrong (weight ``lbd``) and
        the correct (weight ``1 - lbd``) training samples (``"auto"``: tuned).
    validation_fraction : float in (0, 1), default=0.2
        Share of the training data held out to tune the ``"auto"`` values.
    random_state : int, RandomState instance or None, default=0
        Seed of the validation split.
    predict_batch_size : int, default=None
        Image rows per (rows, K) block; by default as many as keep a block below
        2**21 float64 elements, at most 8192.

    Attributes
    ----------
    D_ : ndarray of shape (K, K)
        The learned matrix (symmetric, non-negative, zero diagonal, unit
        Frobenius norm).
    gini_fallback_ : bool
        Whether ``D_`` is the Gini fallback ``(1 - I) / sqrt(K (K - 1))``.
    temperature_ : float
        The temperature used.
    lbd_ : float
        The trade-off used.
    classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels: the first means the VLM is wrong, the second
        that it is right.
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d)
        Candidate texts seen in ``fit`` (float64).

    References
    ----------
    .. [1] E. Dadalto, M. Romanelli, G. Pichler and P. Piantanida. "A
       Data-Driven Measure of Relative Uncertainty for Misclassification
       Detection", ICLR 2024, arXiv:2306.01710.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import correctness
    >>> from vilu_sklearn.baselines import RelU
    >>> rng = np.random.default_rng(0)
    >>> X_txt = rng.normal(size=(4, 16))
    >>> labels = rng.integers(0, 4, size=300)
    >>> X_img = X_txt[labels] + rng.normal(scale=2.0, size=(300, 16))
    >>> y_correct = correctness(X_img, X_txt, labels)
    >>> relu = RelU(logit_scale=10.0).fit(X_img, X_txt, y_correct)
    >>> relu.D_.shape, bool(np.allclose(relu.D_, relu.D_.T))
    ((4, 4), True)
    >>> float(relu.temperature_) in RelU._T_GRID, float(relu.lbd_) in RelU._LBD_GRID
    (True, True)
    >>> bool(relu.decision_function(X_img).max() <= 0)
    True
    """

    _caption_support = False
    _fixed_candidates = True
    _unseen_classes = "n/a"  # D is a matrix over the fit's classes
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "temperature": [
            NumberInterval(numbers.Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "lbd": [
            NumberInterval(numbers.Real, 0, 1, closed="both"),
            StrOptions({"auto"}),
        ],
        "validation_fraction": [NumberInterval(numbers.Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }
    _T_GRID = (1.0, 0.1, 0.2, 0.5, 2.0, 5.0, 10.0)
    validation_aurocs_: np.ndarray | None
    _LBD_GRID = (0.5, 0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0)

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        logit_scale: float = 100.0,
        normalize: bool = True,
        temperature: float | str = "auto",
        lbd: float | str = "auto",
        validation_fraction: float = 0.2,
        random_state: Any = 0,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.temperature = temperature
        self.lbd = lbd
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.predict_batch_size = predict_batch_size

    def _probabilities(self, X_img: np.ndarray, X_txt: np.ndarray, T: float):
        for sl, logits in self._blocks(X_img, X_txt):
            logits /= T
            yield sl, softmax_inplace(logits)

    def _moments(self, inputs: FitInputs, T: float) -> np.ndarray:
        """(weighted) E[p p^T | wrong] and E[p p^T | correct], stacked."""
        assert inputs.X_txt is not None and inputs.y is not None
        K = inputs.X_txt.shape[0]
        y = inputs.y
        w = (
            np.ones(len(y))
            if inputs.sample_weight is None
            else np.asarray(inputs.sample_weight, dtype=np.float64)
        )
        M = np.zeros((2, K, K))  # M[0]: wrong, M[1]: correct (weighted sums)
        for sl, p in self._probabilities(inputs.X_img, inputs.X_txt, T):
            for label in (0, 1):
                wl = w[sl] * (y[sl] == label)
                M[label] += (p * wl[:, None]).T @ p
        totals = np.array([w[y == 0].sum(), w[y == 1].sum()])
        # a class with zero total weight contributes nothing
        M /= np.where(totals > 0, totals, 1.0)[:, None, None]
        return M

    @staticmethod
    def _matrix(M: np.ndarray, lbd: float) -> tuple[np.ndarray, bool]:
        D = lbd * M[0] - (1.0 - lbd) * M[1]
        np.fill_diagonal(D, 0.0)
        np.maximum(D, 0.0, out=D)
        fallback = not bool((D > 0).any())
        if fallback:
            D = 1.0 - np.eye(len(D))
        return D / np.linalg.norm(D), fallback

    def _candidates(self) -> list[tuple[float, float]]:
        Ts = self._T_GRID if self.temperature == "auto" else (self.temperature,)
        lbds = self._LBD_GRID if self.lbd == "auto" else (self.lbd,)
        return [(float(T), float(lbd)) for T in Ts for lbd in lbds]

    def _tune(self, inputs: FitInputs) -> tuple[float, float]:
        candidates = self._candidates()
        split = None
        if len(candidates) > 1:
            split = validation_split(
                inputs, float(self.validation_fraction), self.random_state
            )
        if split is None:
            return candidates[0]
        fit, val = split
        texts, y_val = val.X_txt, val.y
        assert texts is not None and y_val is not None
        cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}

        def scores(cand: tuple[float, float]) -> np.ndarray:
            T, lbd = cand
            if T not in cache:
                p = np.empty((val.X_img.shape[0], texts.shape[0]))
                for sl, block in self._probabilities(val.X_img, texts, T):
                    p[sl] = block
                cache[T] = (self._moments(fit, T), p)
            M, p = cache[T]
            D = self._matrix(M, lbd)[0]
            return -np.einsum("ij,ij->i", p @ D, p)

        best, aurocs = best_by_auroc(candidates, scores, y_val, val.sample_weight)
        self.validation_aurocs_ = aurocs
        return best

    def _fit_scorer(self, inputs: FitInputs) -> None:
        self.validation_aurocs_ = None
        self.temperature_, self.lbd_ = self._tune(inputs)
        M = self._moments(inputs, self.temperature_)
        self.D_, self.gini_fallback_ = self._matrix(M, self.lbd_)

    def _confidence(self, logits: np.ndarray) -> np.ndarray:
        logits /= self.temperature_
        p = softmax_inplace(logits)
        return -np.einsum("ij,ij->i", p @ self.D_, p)
