"""Machinery shared by the baseline failure predictors.

Every baseline turns CLIP-style logits ``logit_scale * cos(X_img, X_txt)`` into a
confidence (higher = more likely correct). The call forms of ``fit``,
parameter validation and the caption groups come from
:class:`vilu_sklearn._base.BaseFailurePredictor`; this module adds the
parameters every baseline shares and the chunked computation of the logits (one
(chunk, K) block of rows at a time, so memory does not grow with the number of
images), on which a baseline only defines its confidence.

All computations run in float64 whatever the input dtype (float16, float32 or
float64), so scores only depend on the input values.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import StrOptions

from .._base import BaseFailurePredictor, FitInputs, check_candidate_texts
from .._constraints import positive_int, positive_real
from .._zero_shot import l2_normalize, similarity_logits
from .._zero_shot import softmax_inplace as softmax_inplace  # re-exported

__all__: list[str] = []

# constraints of the parameters with caption mode (training-free baselines)
CAPTION_CONSTRAINTS: dict[str, list[Any]] = {"caption_group_size": [positive_int()]}

# numpydoc entries of the classification-only baselines (see fill_doc)
CLASSIFICATION_TEXTS_DOC = """text_embeddings : array-like of shape (K, d), default=None
        Candidate text embeddings used when ``fit`` and the prediction methods
        get no ``X_txt``.
    mode : {"classification"}, default="classification"
        Only classification mode is supported (caption mode raises an error)."""

# elements of one (rows, K) float64 block of logits: 2**21 = 16 MiB
_BLOCK_ELEMENTS = 1 << 21
_MAX_ROWS = 8192


def fill_doc(**sections: str) -> Callable[[type], type]:
    """Class decorator: fill the ``{name}`` fields of the docstring with sections.

    The docstring is a ``str.format`` template (literal braces doubled), filled
    at import, so ``help()`` shows the full text; the documentation site reads
    it at run time too (docs/hooks/runtime_docstrings.py).
    """

    def fill(cls: type) -> type:
        cls.__doc__ = (cls.__doc__ or "").format(**sections)
        return cls

    return fill


def check_positive(value: Any, name: str) -> float:
    """Check that a parameter is a positive finite real number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(float(value))
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.")
    return float(value)


def check_positive_int(value: Any, name: str) -> int:
    """Check that a parameter is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def iter_logit_blocks(
    X_img: np.ndarray,
    X_txt: np.ndarray,
    *,
    logit_scale: float,
    normalize: bool,
    rows: int | None = None,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows_slice, logits)`` with float64 logits of shape (chunk, K).

    The candidate texts are normalised once; each block of image rows is read,
    cast to float64 and normalised on its own, so only one (chunk, K) block of
    logits (and one (chunk, d) block of images) exists at a time.
    """
    txt = np.asarray(X_txt, dtype=np.float64)
    if normalize:
        txt = l2_normalize(txt)
    n, K = X_img.shape[0], txt.shape[0]
    if rows is None:
        rows = max(1, min(_MAX_ROWS, _BLOCK_ELEMENTS // K))
    for start in range(0, n, rows):
        sl = slice(start, min(n, start + rows))
        block = np.asarray(X_img[sl], dtype=np.float64)
        if normalize:
            block = l2_normalize(block)
        yield (
            sl,
            similarity_logits(block, txt, logit_scale=logit_scale, normalize=False),
        )


def check_same_candidates(texts: np.ndarray, fitted: np.ndarray, owner: str) -> None:
    """Check that prediction texts are the fit's candidates, in the fit's order.

    What a fixed-candidate baseline learns is indexed by candidate, so other or
    reordered class prompts would silently change its scores. Equality allows
    for rounding (relative 1e-3, e.g. a float16 copy).
    """
    if texts.shape[0] != fitted.shape[0]:
        raise ValueError(
            f"X_txt has {texts.shape[0]} candidate texts (shape {texts.shape}), "
            f"but {owner} was fitted on K={fitted.shape[0]} candidates: what it "
            "learned is indexed by candidate, so predict with the same K class "
            "prompts."
        )
    a = np.asarray(texts, dtype=np.float64)
    atol = 1e-3 * float(np.abs(fitted).max())
    aligned = np.isclose(a, fitted, rtol=1e-3, atol=atol).all(axis=1)
    if aligned.all():
        return
    i = int(np.argmin(aligned))
    match = np.isclose(a[i], fitted, rtol=1e-3, atol=atol).all(axis=1)
    if match.any():
        j = int(np.argmax(match))
        raise ValueError(
            f"X_txt holds the candidate texts of fit in another order (row {i} of "
            f"X_txt is row {j} in fit): {owner} learned per-candidate statistics, "
            "so pass the class prompts in the order of fit (or omit X_txt)."
        )
    raise ValueError(
        f"X_txt differs from the {fitted.shape[0]} candidate texts seen in fit "
        f"(first at row {i}): {owner} learned per-candidate statistics, so predict "
        "with the class prompts of fit (or omit X_txt)."
    )


class BaseBaseline(BaseFailurePredictor):
    """Base class of the baselines: logits in blocks, scoring left abstract.

    ``fit``, the call forms and caption mode come from
    :class:`~vilu_sklearn._base.BaseFailurePredictor`. Subclasses define
    ``__init__`` (keyword-only, storing the parameters) and
    :meth:`_confidence`, which maps a float64 (rows, K) block of logits to the
    (rows,) confidences and may overwrite the block. Fitted baselines override
    :meth:`_fit_scorer`; baselines that cannot run in caption mode set
    ``_caption_support = False``.

    Parameters are declared in ``_parameter_constraints`` and checked once at the
    start of ``fit``. A subclass extends the shared constraints with its own,
    ``{**BaseBaseline._parameter_constraints, "k": [...]}``, adding
    ``**CAPTION_CONSTRAINTS`` when it has ``caption_group_size``; rules between
    parameters go in :meth:`_check_extra_params`.
    """

    # fitted on the candidate set: prediction texts must have the fit's K rows
    _fixed_candidates: ClassVar[bool] = False
    # what the benchmark reports (vilu_sklearn._protocols): the training labels
    # the scores use ("none", "y_correct", "labels"), and whether the baseline
    # can score candidate classes unseen in fit ("ok", "fallback:<what>", "n/a")
    _supervision: ClassVar[str] = "y_correct"
    _unseen_classes: ClassVar[str] = "ok"

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "text_embeddings": ["array-like", None],
        "mode": [StrOptions({"classification", "caption"})],
        "logit_scale": [positive_real()],
        "normalize": ["boolean"],
        "predict_batch_size": [positive_int(), None],
    }

    # parameters every baseline has (set by the subclass __init__)
    logit_scale: float
    normalize: bool
    predict_batch_size: int | None

    # ----------------------------------------------------------- to override
    def _supervision_level(self) -> str:
        """The training labels the scores use (``_supervision`` by default)."""
        return self._supervision

    def _fit_scorer(self, inputs: FitInputs) -> None:
        """Learn what the scorer needs (nothing for training-free baselines)."""

    def _confidence(self, logits: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------- fit
    def _fit(self, inputs: FitInputs) -> None:
        self.text_embeddings_ = (
            None if inputs.X_txt is None else np.array(inputs.X_txt, dtype=np.float64)
        )
        self.classes_ = inputs.classes
        self._fit_scorer(inputs)

    # ------------------------------------------------------------ prediction
    def _scale(self) -> float:
        """Factor of the cosine similarities in the logits."""
        return float(self.logit_scale)

    def _blocks(
        self, X_img: np.ndarray, X_txt: np.ndarray
    ) -> Iterator[tuple[slice, np.ndarray]]:
        return iter_logit_blocks(
            X_img,
            X_txt,
            logit_scale=self._scale(),
            normalize=bool(self.normalize),
            rows=self.predict_batch_size,
        )

    def _classification_texts(self, X_txt: Any, d: int) -> np.ndarray:
        fitted: np.ndarray | None = self.text_embeddings_
        if fitted is None:  # pragma: no cover - fit sets it in classification mode
            raise ValueError("X_txt is required in classification mode.")
        if X_txt is None:
            return fitted
        texts = check_candidate_texts(
            X_txt, d, feature_names=getattr(self, "feature_names_in_", None)
        )
        if self._fixed_candidates:
            check_same_candidates(texts, fitted, type(self).__name__)
        return texts

    def _decision_classification(
        self, X_img: np.ndarray, texts: np.ndarray
    ) -> np.ndarray:
        out = np.empty(X_img.shape[0], dtype=np.float64)
        for sl, logits in self._blocks(X_img, texts):
            out[sl] = self._confidence(logits)
        return out

    def _classification_scores(self, X_img: np.ndarray, X_txt: Any) -> np.ndarray:
        return self._decision_classification(
            X_img, self._classification_texts(X_txt, X_img.shape[1])
        )

    def _group_scores(self, X_img: np.ndarray, captions: np.ndarray) -> np.ndarray:
        return self._decision_classification(X_img, captions)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # the scores are fixed functions of the VLM's logits (at most a few
        # fitted numbers), not a model of y: training accuracy can be low
        tags.classifier_tags.poor_score = True
        return tags


class ThresholdPredictMixin:
    """Adds ``predict``: ``classes_[1]`` where the confidence exceeds a threshold.

    The threshold (``_predict_threshold``) has a meaning for the score.
    """

    _predict_threshold: ClassVar[float] = 0.0

    def predict(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Predicted correctness: ``classes_[1]`` where the confidence is high.

        See the class docstring for the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d) or (n_samples, d), default=None
            Candidate texts or, in caption mode, the paired captions.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Values of ``classes_``: ``classes_[1]`` means "predicted correct".
        """
        conf = self.decision_function(X, X_txt)  # type: ignore[attr-defined]
        return self.classes_[(conf > self._predict_threshold).astype(int)]  # type: ignore[attr-defined]
