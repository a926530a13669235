"""Machinery shared by the baseline failure predictors.

Every baseline turns CLIP-style logits ``logit_scale * cos(X_img, X_txt)`` into a
confidence (higher = more likely correct). This module holds everything except
that last step: the call forms of ``fit`` (through
:func:`vilu_sklearn._base.resolve_fit_inputs`), parameter checks, the chunked
computation of the logits (one (chunk, K) block of rows at a time, so memory does
not grow with the number of images), caption mode (candidates = the captions of
consecutive groups of ``caption_group_size`` rows), ``score`` (AUROC) and the
tags.

All computations run in float64 whatever the input dtype (float16, float32 or
float64), so scores only depend on the input values.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._base import (
    FailurePredictorMixin,
    FitInputs,
    check_candidate_texts,
    resolve_fit_inputs,
)
from .._constraints import positive_int, positive_real
from .._validation import check_embeddings
from .._zero_shot import caption_groups, l2_normalize, similarity_logits

__all__: list[str] = []

# constraints of the parameters with caption mode (training-free baselines)
CAPTION_CONSTRAINTS: dict[str, list[Any]] = {"caption_group_size": [positive_int()]}

# elements of one (rows, K) float64 block of logits: 2**21 = 16 MiB
_BLOCK_ELEMENTS = 1 << 21
_MAX_ROWS = 8192


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


def softmax_inplace(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, overwriting ``logits`` (no extra (rows, K) block)."""
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


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


class BaseBaseline(FailurePredictorMixin, ClassifierMixin, BaseEstimator):
    """Base class of the baselines: fit/predict plumbing, scoring left abstract.

    Subclasses define ``__init__`` (keyword-only, storing the parameters) and
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

    _caption_support: ClassVar[bool] = True
    # fitted on the candidate set: prediction texts must have the fit's K rows
    _fixed_candidates: ClassVar[bool] = False

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "text_embeddings": ["array-like", None],
        "mode": [StrOptions({"classification", "caption"})],
        "logit_scale": [positive_real()],
        "normalize": ["boolean"],
        "predict_batch_size": [positive_int(), None],
    }

    # parameters every baseline has (set by the subclass __init__)
    text_embeddings: Any
    mode: str
    caption_group_size: int  # absent from baselines without caption mode
    logit_scale: float
    normalize: bool
    predict_batch_size: int | None

    # ----------------------------------------------------------- to override
    def _check_extra_params(self) -> None:
        """Check the rules between parameters that constraints cannot express."""

    def _fit_scorer(self, inputs: FitInputs) -> None:
        """Learn what the scorer needs (nothing for training-free baselines)."""

    def _confidence(self, logits: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    # ---------------------------------------------------------------- checks
    def _check_params(self) -> None:
        self._validate_params()
        if not self._caption_support and self.mode == "caption":
            raise ValueError(
                f"{type(self).__name__} supports mode='classification' only: it is "
                "fitted on a fixed candidate set (class prompts), which caption mode "
                "lacks. Use a training-free baseline (MSP, Entropy, Doctor, Energy, "
                "MaxLogit, Margin) or ViLUClassifier for captions."
            )
        if self.mode == "caption" and self.text_embeddings is not None:
            raise ValueError(
                "text_embeddings must be None in caption mode: the candidates of an "
                "image are the captions of its group, passed as X_txt."
            )
        self._check_extra_params()

    # ------------------------------------------------------------------- fit
    def fit(
        self, X: Any, y: Any = None, y_correct: Any = None, *, sample_weight: Any = None
    ) -> Any:
        """Validate the inputs and fit the scorer (if it learns anything).

        Call forms (classification mode):

        * ``fit(X_img, X_txt, y_correct)``;
        * ``fit(X_img, y_correct)`` with ``text_embeddings`` set at construction.

        Caption mode (training-free baselines only): ``fit(X_img, X_txt)``, with
        ``X_txt`` paired row by row.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings ``X_img``.
        y : array-like of shape (n_samples,) or (K, d) or (n_samples, d)
            ``y_correct`` in the two-argument form; the candidate texts ``X_txt``
            in the three-argument form; the paired captions in caption mode.
        y_correct : array-like of shape (n_samples,), default=None
            Correctness labels of the three-argument form: 1 where the VLM's
            prediction is correct, 0 where it is wrong.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights; validated, and used by the fitted baselines
            only (training-free ones learn nothing from the data).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_params()
        if self.mode == "caption":
            if check_embeddings(X, name="X_img").shape[0] < 2:
                raise ValueError(
                    "Caption mode needs at least 2 image-caption pairs; got 1 sample."
                )
        inputs = resolve_fit_inputs(
            self,
            X,
            y,
            y_correct,
            text_embeddings=self.text_embeddings,
            mode=self.mode,
            sample_weight=sample_weight,
        )
        self.text_embeddings_ = (
            None if inputs.X_txt is None else np.array(inputs.X_txt, dtype=np.float64)
        )
        self.classes_ = inputs.classes
        self._fit_scorer(inputs)
        return self

    # ------------------------------------------------------------ prediction
    def _blocks(
        self, X_img: np.ndarray, X_txt: np.ndarray
    ) -> Iterator[tuple[slice, np.ndarray]]:
        return iter_logit_blocks(
            X_img,
            X_txt,
            logit_scale=float(self.logit_scale),
            normalize=bool(self.normalize),
            rows=self.predict_batch_size,
        )

    def _classification_texts(self, X_txt: Any, d: int) -> np.ndarray:
        fitted: np.ndarray | None = self.text_embeddings_
        if fitted is None:  # pragma: no cover - fit sets it in classification mode
            raise ValueError("X_txt is required in classification mode.")
        if X_txt is None:
            return fitted
        texts = check_candidate_texts(X_txt, d)
        if self._fixed_candidates and texts.shape[0] != fitted.shape[0]:
            raise ValueError(
                f"X_txt has {texts.shape[0]} candidate texts (shape {texts.shape}), "
                f"but {type(self).__name__} was fitted on K={fitted.shape[0]} "
                "candidates: what it learned is indexed by candidate, so predict "
                "with the same K class prompts."
            )
        return texts

    def _decision_classification(
        self, X_img: np.ndarray, texts: np.ndarray
    ) -> np.ndarray:
        out = np.empty(X_img.shape[0], dtype=np.float64)
        for sl, logits in self._blocks(X_img, texts):
            out[sl] = self._confidence(logits)
        return out

    def _validated_predict_inputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X_img = check_embeddings(X, name="X_img")
        validate_data(self, X, skip_check_array=True, reset=False)
        return X_img

    def decision_function(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Confidence that the VLM's prediction is correct (higher = more likely).

        ``y_correct = 1`` marks a correct prediction; for AUROC and FPR@95%TPR the
        successes are the positive class, so this score can be passed to
        :func:`vilu_sklearn.metrics.auroc` (or ``scoring="roc_auc"``) as is.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d) or (n_samples, d), default=None
            Candidate texts (classification; defaults to those seen in ``fit``)
            or the paired captions (caption mode; required).

        Returns
        -------
        confidence : ndarray of shape (n_samples,)
            Float64 confidences.
        """
        X_img = self._validated_predict_inputs(X)
        n, d = X_img.shape
        if self.mode != "caption":
            return self._decision_classification(
                X_img, self._classification_texts(X_txt, d)
            )
        if X_txt is None:
            raise ValueError(
                "Caption mode needs the paired captions: "
                "decision_function(X_img, X_txt) with X_txt of shape (n, d)."
            )
        captions = check_candidate_texts(X_txt, d, n_rows=n)
        out = np.empty(n, dtype=np.float64)
        for group in caption_groups(n, int(self.caption_group_size)):
            out[group] = self._decision_classification(X_img[group], captions[group])
        return out

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
