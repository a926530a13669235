"""Training-free baselines: scores computed from the VLM's logits alone.

Each class is a few lines of scoring on top of :class:`._base.BaseBaseline`,
which takes care of the call forms, the chunked logits and caption mode.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

import numpy as np
from scipy.special import logsumexp
from sklearn.utils._param_validation import StrOptions

from .._constraints import NumberInterval, positive_real
from .._persistence import register_estimator
from ._base import (
    CAPTION_CONSTRAINTS,
    BaseBaseline,
    ThresholdPredictMixin,
    fill_doc,
    softmax_inplace,
)

__all__ = ["MSP", "MCM", "Entropy", "Doctor", "Energy", "MaxLogit", "Margin"]

_SHARED_PARAMS = """text_embeddings : array-like of shape (K, d), default=None
        Candidate text embeddings (e.g. one prompt per class) used when ``fit``
        and the prediction methods get no ``X_txt``. Classification mode only.
    mode : {"classification", "caption"}, default="classification"
        Shared class prompts (classification) or per-image captions (caption:
        the candidates of an image are the captions of its group of
        ``caption_group_size`` consecutive rows).
    caption_group_size : int, default=1024
        Caption mode: number of candidate captions per group (the ViLU paper
        evaluates with 1024); the last group may be smaller.
    logit_scale : float, default=100.0
        CLIP's temperature (100 for OpenAI CLIP): logits are
        ``logit_scale * cos(X_img, X_txt)``.
    normalize : bool, default=True
        L2-normalise image and text embeddings (cosine similarity); with False
        raw dot products are scaled.
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits; by default as many as keep a
        block below 2**21 float64 elements (16 MiB), at most 8192."""

_SHARED_ATTRIBUTES = """classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels: the first means the VLM is wrong, the second
        that it is right (``[0, 1]`` in caption mode).
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d) or None
        Candidate texts seen in ``fit`` (float64); None in caption mode."""


class _TrainingFree(BaseBaseline):
    """Training-free baseline: ``fit`` only validates and stores the texts."""

    _supervision = "none"

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        **CAPTION_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        caption_group_size: int = 1024,
        logit_scale: float = 100.0,
        normalize: bool = True,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.caption_group_size = caption_group_size
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.predict_batch_size = predict_batch_size


def max_softmax_inplace(logits: np.ndarray) -> np.ndarray:
    """Largest softmax probability per row, ``1 / sum_k exp(z_k - max z)``.

    Overwrites ``logits``.
    """
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    return 1.0 / logits.sum(axis=1)


_doc = fill_doc(shared_params=_SHARED_PARAMS, shared_attributes=_SHARED_ATTRIBUTES)


@register_estimator
@_doc
class MSP(ThresholdPredictMixin, _TrainingFree):
    """Maximum softmax probability: ``max_k softmax(logit_scale * cos)_k``.

    The maximum softmax probability of the VLM's own zero-shot classifier, at
    CLIP's logit scale (what the ViLU evaluator calls "MCM", with its
    ``tau = 1 / 100``): the confidence is the largest class probability of
    ``p = softmax(logit_scale * cos(X_img, X_txt))``. The published MCM (Ming et
    al., 2022) takes the softmax of ``cos / T`` with ``T = 1``: see
    :class:`MCM`. Training-free: ``fit`` only
    validates its inputs and stores the candidate texts, so that the estimator
    works in ``GridSearchCV``, cross-validation and the benchmark unchanged.

    Conventions: docs/conventions.md. ``predict_proba[:, 1]`` is ``p_max``, read
    as P(correct) (uncalibrated; see :class:`TemperatureScaling`), and
    ``predict`` is 1 where ``p_max > 0.5``.

    Parameters
    ----------
    {shared_params}

    Attributes
    ----------
    {shared_attributes}

    See Also
    --------
    TemperatureScaling : MSP at a temperature fitted on correctness labels.
    MCM : The published Maximum Concept Matching score (``cos / T``, ``T = 1``).

    References
    ----------
    .. [1] D. Hendrycks and K. Gimpel. "A Baseline for Detecting Misclassified
       and Out-of-Distribution Examples in Neural Networks", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import MSP
    >>> X_txt = np.eye(3)                              # 3 class prompts
    >>> X_img = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    >>> msp = MSP(logit_scale=1.0).fit(X_img, X_txt, [1, 0])
    >>> msp.decision_function(X_img).round(4)           # softmax of cosines
    array([0.5761, 0.4011])
    >>> msp.predict(X_img)
    array([1, 0])
    """

    _predict_threshold = 0.5

    def _confidence(self, logits: np.ndarray) -> np.ndarray:
        return max_softmax_inplace(logits)

    def predict_proba(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """P(wrong) and P(correct), with P(correct) = the max softmax probability.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d) or (n_samples, d), default=None
            Candidate texts or, in caption mode, the paired captions.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            ``proba[:, 1] = p_max``, ordered like ``classes_``.
        """
        p = self.decision_function(X, X_txt)
        return np.column_stack([1.0 - p, p])


@register_estimator
class MCM(BaseBaseline):
    """Maximum Concept Matching (Ming et al., 2022): ``max_k softmax(cos / T)_k``.

    The published MCM score: the largest probability of the softmax of the
    cosine similarities between the image and the K candidate texts divided
    by a temperature ``T``, with ``T = 1`` by default as in the paper (the
    softmax of raw cosines, which lie in [-1, 1], is much flatter than the
    VLM's own ``softmax(100 * cos)``; its ranking of the images differs from
    that of :class:`MSP`, which is the ``T = 1 / logit_scale`` variant).
    Training-free; works in caption mode (the candidates of an image are the
    captions of its group). There is no ``logit_scale`` parameter: ``T`` plays
    its role. No ``predict`` nor ``predict_proba``: at ``T = 1`` the score stays
    close to ``1 / K`` and is not a probability of being correct.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    text_embeddings : array-like of shape (K, d), default=None
        Candidate text embeddings used when ``fit`` and the prediction methods
        get no ``X_txt``. Classification mode only.
    mode : {"classification", "caption"}, default="classification"
        Shared class prompts or per-image captions (see :class:`MSP`).
    caption_group_size : int, default=1024
        Caption mode: number of candidate captions per group.
    temperature : float, default=1.0
        The temperature ``T``: the logits are ``cos(X_img, X_txt) / T``.
    normalize : bool, default=True
        L2-normalise image and text embeddings (cosine similarity).
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels: the first means the VLM is wrong, the second
        that it is right.
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d) or None
        Candidate texts seen in ``fit`` (float64); None in caption mode.

    See Also
    --------
    MSP : The same maximum at CLIP's scale, ``softmax(logit_scale * cos)``.

    References
    ----------
    .. [1] Y. Ming, Z. Cai, J. Gu, Y. Sun, W. Li and Y. Li. "Delving into
       Out-of-Distribution Detection with Vision-Language Representations",
       NeurIPS 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import MCM
    >>> X_txt = np.eye(3)
    >>> X_img = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    >>> mcm = MCM().fit(X_img, X_txt, [1, 0])
    >>> mcm.decision_function(X_img).round(4)   # e / (e + 2), e^.71 / (2 e^.71 + 1)
    array([0.5761, 0.4011])
    """

    _supervision = "none"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **{
            k: v
            for k, v in BaseBaseline._parameter_constraints.items()
            if k != "logit_scale"
        },
        **CAPTION_CONSTRAINTS,
        "temperature": [positive_real()],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        caption_group_size: int = 1024,
        temperature: float = 1.0,
        normalize: bool = True,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.caption_group_size = caption_group_size
        self.temperature = temperature
        self.normalize = normalize
        self.predict_batch_size = predict_batch_size

    def _scale(self) -> float:
        return 1.0 / float(self.temperature)

    def _confidence(self, logits: np.ndarray) -> np.ndarray:
        return max_softmax_inplace(logits)


@register_estimator
@_doc
class Entropy(_TrainingFree):
    """Negative normalised entropy of ``softmax(logit_scale * cos)``.

    Confidence ``sum_k p_k log(p_k + eps) / log K`` (in [-1, 0]; 0 for a one-hot
    ``p``), with ``K`` the number of candidates (in caption mode, the size of the
    group; a group of one candidate scores 0). With ``eps=1e-6`` (default) it is
    exactly the ViLU evaluator's score; ``eps=0`` gives the exact Shannon
    entropy (``0 log 0 = 0``).

    Conventions: docs/conventions.md. There is no ``predict`` nor ``predict_proba``: an
    entropy is neither a probability of being correct nor has a natural
    threshold.

    Parameters
    ----------
    {shared_params}
    eps : float, default=1e-6
        Added to ``p`` inside the logarithm, as in the ViLU reference code.

    Attributes
    ----------
    {shared_attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import Entropy
    >>> X_txt = np.eye(2)
    >>> X_img = np.array([[1.0, 1.0], [1.0, 0.0]])
    >>> ent = Entropy(logit_scale=100.0).fit(X_img, X_txt, [0, 1])
    >>> ent.decision_function(X_img).round(4)   # uniform p: -1; one-hot p: 0
    array([-1., -0.])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_TrainingFree._parameter_constraints,
        "eps": [NumberInterval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        caption_group_size: int = 1024,
        logit_scale: float = 100.0,
        normalize: bool = True,
        predict_batch_size: int | None = None,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(
            text_embeddings=text_embeddings,
            mode=mode,
            caption_group_size=caption_group_size,
            logit_scale=logit_scale,
            normalize=normalize,
            predict_batch_size=predict_batch_size,
        )
        self.eps = eps

    def _confidence(self, logits: np.ndarray) -> np.ndarray:
        K = logits.shape[1]
        if K == 1:
            return np.zeros(logits.shape[0])
        p = softmax_inplace(logits)
        if self.eps:
            log_p = np.log(p + self.eps)
        else:
            log_p = np.log(p, out=np.full_like(p, 0.0), where=p > 0)
        return np.einsum("ij,ij->i", p, log_p) / np.log(K)


@register_estimator
@_doc
class Doctor(ThresholdPredictMixin, _TrainingFree):
    """DOCTOR (Granese et al., 2021), totally black-box: confidence ``-D``.

    With ``p = softmax(logit_scale * cos / temperature)``:

    * ``variant="alpha"``: ``D_alpha = (1 - sum_k p_k^2) / sum_k p_k^2`` (the
      ViLU evaluator's DOCTOR);
    * ``variant="beta"``: ``D_beta = (1 - p_max) / p_max``.

    ``D`` grows with the chance of an error, so the confidence is ``-D`` (in
    ``(-(K - 1), 0]``). No input perturbation (only embeddings are available).
    ``predict`` applies DOCTOR's rule ``D <= gamma`` with ``gamma = 1``, i.e.
    correct where ``sum_k p_k^2 > 1/2`` (alpha) or ``p_max > 1/2`` (beta). No
    ``predict_proba``: ``-D`` is not a probability.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {shared_params}
    variant : {{"alpha", "beta"}}, default="alpha"
        Which discriminator.
    temperature : float, default=1.0
        Divides the logits before the softmax (ODIN-style; the ViLU evaluator
        uses 1).

    Attributes
    ----------
    {shared_attributes}

    References
    ----------
    .. [1] F. Granese et al. "DOCTOR: A Simple Method for Detecting
       Misclassification Errors", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import Doctor
    >>> X_txt = np.eye(2)
    >>> X_img = np.array([[1.0, 1.0], [1.0, 0.0]])
    >>> doc = Doctor(logit_scale=100.0).fit(X_img, X_txt, [0, 1])
    >>> doc.decision_function(X_img).round(4)   # p = (1/2, 1/2): g = 1/2, D = 1
    array([-1., -0.])
    """

    _predict_threshold = -1.0

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_TrainingFree._parameter_constraints,
        "variant": [StrOptions({"alpha", "beta"})],
        "temperature": [positive_real()],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        caption_group_size: int = 1024,
        logit_scale: float = 100.0,
        normalize: bool = True,
        predict_batch_size: int | None = None,
        variant: str = "alpha",
        temperature: float = 1.0,
    ) -> None:
        super().__init__(
            text_embeddings=text_embeddings,
            mode=mode,
            caption_group_size=caption_group_size,
            logit_scale=logit_scale,
            normalize=normalize,
            predict_batch_size=predict_batch_size,
        )
        self.variant = variant
        self.temperature = temperature

    def _confidence(self, logits: np.ndarray) -> np.ndarray:
        logits /= float(self.temperature)
        p = softmax_inplace(logits)
        g = np.einsum("ij,ij->i", p, p) if self.variant == "alpha" else p.max(axis=1)
        return -(1.0 - g) / g


@register_estimator
@_doc
class Energy(_TrainingFree):
    """Energy score: confidence ``T * logsumexp(logit_scale * cos / T)``.

    The negative free energy of the logits (Liu et al., 2020); higher means more
    likely correct. No ``predict`` nor ``predict_proba``: the score is
    unbounded and has no natural threshold.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {shared_params}
    temperature : float, default=1.0
        Energy temperature ``T``.

    Attributes
    ----------
    {shared_attributes}

    References
    ----------
    .. [1] W. Liu et al. "Energy-based Out-of-distribution Detection", NeurIPS
       2020.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import Energy
    >>> X_txt = np.eye(2)
    >>> X_img = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> e = Energy(logit_scale=1.0).fit(X_img, X_txt, [1, 0])
    >>> e.decision_function(X_img).round(4)   # log(e^1 + e^0), log(2 e^0.7071)
    array([1.3133, 1.4003])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_TrainingFree._parameter_constraints,
        "temperature": [positive_real()],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        caption_group_size: int = 1024,
        logit_scale: float = 100.0,
        normalize: bool = True,
        predict_batch_size: int | None = None,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(
            text_embeddings=text_embeddings,
            mode=mode,
            caption_group_size=caption_group_size,
            logit_scale=logit_scale,
            normalize=normalize,
            predict_batch_size=predict_batch_size,
        )
        self.temperature = temperature

    def _confidence(self, logits: np.ndarray) -> np.ndarray:
        T = float(self.temperature)
        logits /= T
        return T * np.asarray(logsumexp(logits, axis=1))


@register_estimator
@_doc
class MaxLogit(_TrainingFree):
    """Maximum logit: confidence ``logit_scale * max_k cos(X_img, X_txt_k)``.

    It ranks exactly like the largest cosine similarity (``logit_scale`` only
    rescales it). No ``predict`` nor ``predict_proba``: a similarity has no
    natural threshold and is not a probability.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {shared_params}

    Attributes
    ----------
    {shared_attributes}

    References
    ----------
    .. [1] D. Hendrycks et al. "Scaling Out-of-Distribution Detection for
       Real-World Settings", ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import MaxLogit
    >>> X_txt = np.eye(2)
    >>> X_img = np.array([[3.0, 4.0], [1.0, 0.0]])   # cosines (0.6, 0.8), (1, 0)
    >>> m = MaxLogit(logit_scale=10.0).fit(X_img, X_txt, [0, 1])
    >>> m.decision_function(X_img)
    array([ 8., 10.])
    """

    def _confidence(self, logits: np.ndarray) -> np.ndarray:
        return logits.max(axis=1)


@register_estimator
@_doc
class Margin(_TrainingFree):
    """Probability margin: top-1 minus top-2 of ``softmax(logit_scale * cos)``.

    In [0, 1]; a group of one candidate (caption mode) scores 1. No
    ``predict`` nor ``predict_proba``: the margin is not a probability of being
    correct and has no natural threshold.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {shared_params}

    Attributes
    ----------
    {shared_attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import Margin
    >>> X_txt = np.eye(3)
    >>> X_img = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    >>> m = Margin(logit_scale=100.0).fit(X_img, X_txt, [0, 1])
    >>> m.decision_function(X_img).round(4)          # tie: 0; one-hot: 1
    array([0., 1.])
    """

    def _confidence(self, logits: np.ndarray) -> np.ndarray:
        K = logits.shape[1]
        if K == 1:
            return np.ones(logits.shape[0])
        p = softmax_inplace(logits)
        p.partition(K - 2, axis=1)  # in place: the two largest are the last two
        return p[:, -1] - p[:, -2]
