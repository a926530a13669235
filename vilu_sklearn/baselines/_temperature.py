"""Temperature-scaled MSP, with the temperature fitted on correctness labels."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize_scalar

from .._base import FitInputs
from .._constraints import PositiveRealPair
from .._persistence import register_estimator
from ._base import (
    CLASSIFICATION_TEXTS_DOC,
    BaseBaseline,
    ThresholdPredictMixin,
    fill_doc,
)

__all__ = ["TemperatureScaling"]


@register_estimator
@fill_doc(classification_texts=CLASSIFICATION_TEXTS_DOC)
class TemperatureScaling(ThresholdPredictMixin, BaseBaseline):
    """MSP of ``softmax(logit_scale * cos / T)`` with ``T`` fitted on the data.

    ``fit`` chooses the temperature ``T`` that minimises the (weighted) binary
    negative log-likelihood of ``p_max(T)`` read as P(correct) against
    ``y_correct``, by bounded scalar minimisation over ``log T`` (Brent's method,
    :func:`scipy.optimize.minimize_scalar`). Classic temperature scaling (Guo et
    al., 2017) minimises the multiclass NLL of the true class, but only the
    VLM's correctness, not the class labels, is available here; the binary NLL
    of the top-class probability is the natural analogue (on correctly
    predicted samples both losses are ``-log p_max``).

    ``T`` changes the ranking of the samples only slightly (``p_max`` of
    different logit vectors may cross as ``T`` varies); its main effect is to
    make ``predict_proba[:, 1] = p_max(T)`` a calibrated P(correct), so that
    ``predict`` (1 where ``p_max(T) > 0.5``) is meaningful.

    ``fit`` keeps the (n, K) logits of the training data in memory (float64)
    while optimising; prediction works on (chunk, K) blocks. Classification mode
    only.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {classification_texts}
    logit_scale : float, default=100.0
        CLIP's temperature (100 for OpenAI CLIP): logits are
        ``logit_scale * cos(X_img, X_txt)``, then divided by ``T``.
    normalize : bool, default=True
        L2-normalise image and text embeddings (cosine similarity).
    temperature_bounds : tuple of two floats, default=(0.01, 100.0)
        Search interval of ``T``.
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits at prediction; by default as
        many as keep a block below 2**21 float64 elements, at most 8192.

    Attributes
    ----------
    temperature_ : float
        Fitted temperature ``T``.
    classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels: the first means the VLM is wrong, the second
        that it is right.
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d)
        Candidate texts seen in ``fit`` (float64).

    See Also
    --------
    MSP : The same score at ``T = 1``.

    References
    ----------
    .. [1] C. Guo et al. "On Calibration of Modern Neural Networks", ICML 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import correctness
    >>> from vilu_sklearn.baselines import TemperatureScaling
    >>> rng = np.random.default_rng(0)
    >>> X_txt = rng.normal(size=(4, 16))
    >>> labels = rng.integers(0, 4, size=300)
    >>> X_img = X_txt[labels] + rng.normal(scale=2.0, size=(300, 16))
    >>> y_correct = correctness(X_img, X_txt, labels)
    >>> ts = TemperatureScaling(logit_scale=100.0).fit(X_img, X_txt, y_correct)
    >>> bool(ts.temperature_ > 1)     # a logit scale of 100 is overconfident here
    True
    >>> ts.predict_proba(X_img[:2]).shape
    (2, 2)
    """

    _caption_support = False
    _predict_threshold = 0.5
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "temperature_bounds": [PositiveRealPair()],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        logit_scale: float = 100.0,
        normalize: bool = True,
        temperature_bounds: tuple[float, float] = (0.01, 100.0),
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.temperature_bounds = temperature_bounds
        self.predict_batch_size = predict_batch_size

    def _check_extra_params(self) -> None:
        low, high = self.temperature_bounds
        if not low < high:
            raise ValueError(
                "temperature_bounds must satisfy low < high; got "
                f"{tuple(self.temperature_bounds)!r}."
            )

    def _fit_scorer(self, inputs: FitInputs) -> None:
        assert inputs.X_txt is not None and inputs.y is not None
        y = inputs.y.astype(np.float64)
        w = np.ones_like(y) if inputs.sample_weight is None else inputs.sample_weight
        # gaps to the row maximum, the maximum itself excluded (set to +inf), so
        # that s1(T) = sum_k exp(-gap_k / T) = (1 - p_max) / p_max exactly
        gaps = np.empty((inputs.X_img.shape[0], inputs.X_txt.shape[0]))
        for sl, logits in self._blocks(inputs.X_img, inputs.X_txt):
            top = logits.argmax(axis=1)
            np.subtract(logits.max(axis=1, keepdims=True), logits, out=gaps[sl])
            gaps[sl][np.arange(len(top)), top] = np.inf
        w_sum = w.sum()

        def nll(log_t: float) -> float:
            s1 = np.exp(-gaps / math.exp(log_t)).sum(axis=1)
            log1p_s1 = np.log1p(s1)
            # -log p_max = log(1 + s1);  -log(1 - p_max) = log(1 + s1) - log(s1)
            log_s1 = np.log(np.maximum(s1, np.finfo(np.float64).tiny))
            loss = log1p_s1 - (1.0 - y) * log_s1
            return float(np.dot(w, loss) / w_sum)

        low, high = (math.log(float(b)) for b in self.temperature_bounds)
        res = minimize_scalar(
            nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6}
        )
        self.temperature_ = float(math.exp(res.x))

    def _confidence(self, logits: np.ndarray) -> np.ndarray:
        logits /= self.temperature_
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        return 1.0 / logits.sum(axis=1)

    def predict_proba(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """P(wrong) and P(correct), with P(correct) = ``p_max`` at ``T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d), default=None
            Candidate texts (defaults to those seen in ``fit``).

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            ``proba[:, 1] = p_max(T)``, ordered like ``classes_``.
        """
        p = self.decision_function(X, X_txt)
        return np.column_stack([1.0 - p, p])
