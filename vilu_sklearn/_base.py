"""Argument handling shared by every failure predictor of the package.

All estimators accept the same call forms:

* classification mode: ``fit(X_img, X_txt, y_correct)`` or, with
  ``text_embeddings`` set at construction, ``fit(X_img, y_correct)``;
  prediction methods take ``(X_img, X_txt=None)``;
* caption mode: ``fit(X_img, X_txt)`` with the captions paired row by row, and
  ``y_correct`` computed from in-group retrieval.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from ._persistence import PersistMixin
from ._validation import check_embeddings, check_y_correct
from ._zero_shot import caption_groups

__all__ = [
    "BaseFailurePredictor",
    "FailurePredictorMixin",
    "FitInputs",
    "check_candidate_texts",
    "check_text_columns",
    "resolve_fit_inputs",
]


class FitInputs(NamedTuple):
    """Validated training inputs."""

    X_img: np.ndarray
    """Image embeddings (n, d), as given (not copied, not normalised)."""
    X_txt: np.ndarray | None
    """Candidate texts (K, d) in classification mode, else None."""
    captions: np.ndarray | None
    """Paired captions (n, d) in caption mode, else None."""
    y: np.ndarray | None
    """Correctness encoded 0/1 (classification mode), else None."""
    classes: np.ndarray
    """Sorted labels; ``classes[1]`` means correct."""
    sample_weight: np.ndarray | None
    """Validated non-negative sample weights, or None."""
    labels: np.ndarray | None = None
    """True class of each image (index into X_txt), or None."""


def check_text_columns(X_txt: Any, feature_names: Any, *, name: str = "X_txt") -> None:
    """Check that the columns of a DataFrame ``X_txt`` match X_img's feature names.

    Embedding dimensions are matched by position, so a text DataFrame whose
    columns are a reordering of the image columns would be silently wrong.
    Nothing is checked when either side has no column names.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn._base import check_text_columns
    >>> check_text_columns(np.ones((2, 2)), np.array(["a", "b"], dtype=object))
    """
    columns = getattr(X_txt, "columns", None)
    if columns is None or feature_names is None:
        return
    got = np.asarray([str(c) for c in columns], dtype=object)
    expected = np.asarray(feature_names, dtype=object)
    if got.shape != expected.shape or not np.array_equal(got, expected):
        diff = "" if got.shape != expected.shape else _first_difference(got, expected)
        raise ValueError(
            f"The columns of {name} differ from the feature names of X_img "
            f"(seen in fit){diff}: embedding dimensions are matched by position, "
            f"so reorder {name}'s columns like X_img's, e.g. X_txt[X_img.columns]."
        )


def _first_difference(got: np.ndarray, expected: np.ndarray) -> str:
    i = int(np.argmax(got != expected))
    return f" (column {i} is {got[i]!r}, expected {expected[i]!r})"


def check_candidate_texts(
    X_txt: Any,
    dim: int | None,
    *,
    n_rows: int | None = None,
    feature_names: Any = None,
) -> np.ndarray:
    """Validate candidate text embeddings: 2-D, at least 2 rows, width ``dim``.

    Parameters
    ----------
    X_txt : array-like of shape (K, d)
        Candidate texts, or paired captions when ``n_rows`` is given.
    dim : int or None
        Width of the image embeddings.
    n_rows : int, default=None
        Required number of rows (caption mode: one caption per image).
    feature_names : array-like of str, default=None
        Column names of X_img: a DataFrame ``X_txt`` must have the same columns,
        in the same order.

    Returns
    -------
    X_txt : ndarray of shape (K, d)
        The validated array (not copied).

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn._base import check_candidate_texts
    >>> check_candidate_texts(np.ones((1, 4)), 4)
    Traceback (most recent call last):
    ...
    ValueError: X_txt holds 1 candidate text (shape (1, 4)); at least 2 are needed, ...
    """
    check_text_columns(X_txt, feature_names)
    X_txt = check_embeddings(X_txt, name="X_txt", min_samples=1)
    if X_txt.shape[0] < 2:
        raise ValueError(
            f"X_txt holds {X_txt.shape[0]} candidate text (shape {X_txt.shape}); "
            "at least 2 are needed, since the VLM's prediction is a choice "
            "between candidates."
        )
    if dim is not None and X_txt.shape[1] != dim:
        raise ValueError(
            f"X_txt has {X_txt.shape[1]} features per row (shape {X_txt.shape}), "
            f"but X_img has {dim}: image and text embeddings must come from the "
            "same model."
        )
    if n_rows is not None and X_txt.shape[0] != n_rows:
        raise ValueError(
            "In caption mode X_img and X_txt are paired row by row; got "
            f"{n_rows} images and {X_txt.shape[0]} captions."
        )
    return X_txt


def resolve_fit_inputs(
    estimator: Any,
    X: Any,
    y: Any,
    y_correct: Any,
    *,
    text_embeddings: Any = None,
    mode: str = "classification",
    texts_required: bool = True,
    sample_weight: Any = None,
) -> FitInputs:
    """Sort out the call form of ``fit`` and validate everything.

    Sets ``n_features_in_`` (and ``feature_names_in_``) on ``estimator``.

    Parameters
    ----------
    estimator : estimator
        The estimator being fitted.
    X : array-like of shape (n, d)
        Image embeddings.
    y : array-like
        ``y_correct`` (two-argument form), the candidate texts (three-argument
        form) or the paired captions (caption mode).
    y_correct : array-like or None
        Correctness labels of the three-argument form.
    text_embeddings : array-like of shape (K, d), default=None
        The estimator's ``text_embeddings`` parameter.
    mode : {"classification", "caption"}, default="classification"
        Call convention.
    texts_required : bool, default=True
        Whether classification mode needs candidate texts at all.
    sample_weight : array-like of shape (n,), default=None
        Per-sample weights.

    Returns
    -------
    inputs : FitInputs
        The validated inputs.
    """
    X_img = check_embeddings(X, name="X_img")
    validate_data(estimator, X, skip_check_array=True, reset=True)
    n, d = X_img.shape
    names = getattr(estimator, "feature_names_in_", None)
    X_txt = captions = y_arr = None
    if mode == "caption":
        if y_correct is not None:
            raise ValueError(
                "In caption mode y_correct is computed from the paired captions "
                "(in-batch retrieval), not given: call fit(X_img, X_txt)."
            )
        if y is None:
            raise ValueError(
                "Caption mode needs the paired captions: fit(X_img, X_txt) with "
                "X_txt of shape (n_samples, d)."
            )
        captions = check_candidate_texts(y, d, n_rows=n, feature_names=names)
        classes = np.array([0, 1])
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported in caption mode.")
    else:
        if y_correct is not None:
            X_txt = y
        else:
            y_correct, X_txt = y, text_embeddings
        y_arr, classes = check_y_correct(y_correct, n_samples=n)
        if X_txt is not None:
            X_txt = check_candidate_texts(X_txt, d, feature_names=names)
        elif texts_required:
            raise ValueError(
                "No candidate text embeddings: call fit(X_img, X_txt, y_correct) "
                "or set text_embeddings=X_txt (shape (K, d))."
            )
        if len(classes) < 2:
            which = "always right" if bool(classes[0]) else "always wrong"
            raise ValueError(
                f"y_correct holds only one class ({classes[0]!r}) in {n} samples: "
                f"the VLM is {which} on this data, so there is no failure to "
                "predict. A failure predictor needs both correct (1) and wrong (0) "
                "predictions."
            )
    sw = None
    if sample_weight is not None:
        sw = _check_sample_weight(
            sample_weight, X_img, dtype=np.float64, ensure_non_negative=True
        )
        if not sw.any():
            raise ValueError(
                "sample_weight must contain at least one non-zero number: all "
                "sample weights are zero."
            )
    return FitInputs(X_img, X_txt, captions, y_arr, classes, sw)


class FailurePredictorMixin(PersistMixin):
    """``score`` (AUROC), ``save`` and tags shared by every failure predictor.

    Put it left of ``ClassifierMixin, BaseEstimator``. The estimator has
    ``decision_function(X, X_txt=None)`` returning confidences (higher = more likely
    correct) and the parameters ``mode``, ``caption_group_size`` and ``normalize``.
    """

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """AUROC of the confidence, successes (``y_correct = 1``) positive.

        This replaces the accuracy of ``ClassifierMixin.score``: what matters for a
        failure predictor is how well its confidence ranks correct predictions
        above wrong ones. In classification mode ``y`` is ``y_correct``; in caption
        mode ``y`` is the paired captions and ``y_correct`` is computed by in-group
        retrieval with ``caption_group_size`` candidates.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        y : array-like
            ``y_correct`` (classification) or the captions (caption mode).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Area under the ROC curve of failure prediction (higher is better).
        """
        from sklearn.metrics import roc_auc_score

        from ._zero_shot import caption_correctness

        est: Any = self
        if est.mode == "caption":
            y_true = caption_correctness(
                X, y, group_size=int(est.caption_group_size), normalize=est.normalize
            )
            conf = est.decision_function(X, y)
        else:
            conf = est.decision_function(X)
            y_true = check_y_correct(y, n_samples=len(conf))[0]
        return float(roc_auc_score(y_true, conf, sample_weight=sample_weight))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.classifier_tags.multi_class = False
        return tags


class BaseFailurePredictor(FailurePredictorMixin, ClassifierMixin, BaseEstimator):
    """Base class of every failure predictor: call forms and caption plumbing.

    It owns ``fit`` (parameter validation against ``_parameter_constraints``,
    the call forms, caption mode's rules) and ``decision_function`` (input
    checks, and in caption mode the loop over groups of ``caption_group_size``
    rows). A subclass declares its ``_parameter_constraints`` and implements:

    * :meth:`_fit`: learn from the validated :class:`FitInputs`;
    * :meth:`_classification_scores`: the confidences in classification mode;
    * :meth:`_group_scores`: the confidences of one caption group;

    and, if it has rules between parameters, :meth:`_check_extra_params`.
    Estimators without caption mode set ``_caption_support = False``.
    """

    _caption_support: ClassVar[bool] = True

    # parameters every failure predictor has (set by the subclass __init__)
    text_embeddings: Any
    mode: str
    caption_group_size: int  # absent from estimators without caption mode

    # ----------------------------------------------------------- to override
    def _check_extra_params(self) -> None:
        """Check the rules between parameters that constraints cannot express."""

    @property
    def _texts_required(self) -> bool:
        """Whether classification mode needs candidate texts at all."""
        return True

    def _fit(self, inputs: FitInputs) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _classification_scores(
        self, X_img: np.ndarray, X_txt: Any
    ) -> np.ndarray:  # pragma: no cover - abstract
        """Confidences of ``X_img``; ``X_txt`` as given (None: the fitted texts)."""
        raise NotImplementedError

    def _group_scores(
        self, X_img: np.ndarray, captions: np.ndarray
    ) -> np.ndarray:  # pragma: no cover - abstract
        """Confidences of one caption group: its images and their captions."""
        raise NotImplementedError

    # ---------------------------------------------------------------- checks
    def _check_params(self) -> None:
        """Validate each parameter, then the rules between parameters."""
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
        """Validate the parameters and the inputs, then fit.

        Call forms (classification mode):

        * ``fit(X_img, X_txt, y_correct)``;
        * ``fit(X_img, y_correct)`` with ``text_embeddings`` set at construction
          (or, for ViLU's visual-only head, with no texts at all).

        Caption mode: ``fit(X_img, X_txt)``, with ``X_txt`` paired row by row;
        ``y_correct`` is computed by in-group retrieval.

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
            Per-sample weights: they multiply each sample's loss (ViLU) or weigh
            what a fitted baseline learns; training-free baselines only
            validate them.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_params()
        self._fit(self._fit_inputs(X, y, y_correct, sample_weight))
        return self

    def _fit_inputs(
        self, X: Any, y: Any, y_correct: Any, sample_weight: Any
    ) -> FitInputs:
        if self.mode == "caption" and check_embeddings(X, name="X_img").shape[0] < 2:
            raise ValueError(
                "Caption mode needs at least 2 image-caption pairs; got 1 sample."
            )
        return resolve_fit_inputs(
            self,
            X,
            y,
            y_correct,
            text_embeddings=self.text_embeddings,
            mode=self.mode,
            texts_required=self._texts_required,
            sample_weight=sample_weight,
        )

    # ------------------------------------------------------------ prediction
    def _validated_predict_inputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X_img = check_embeddings(X, name="X_img")
        validate_data(self, X, skip_check_array=True, reset=False)
        return X_img

    def decision_function(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Confidence that the VLM's prediction is correct (higher = more likely).

        As everywhere in the package (docs/conventions.md), this score can be
        passed to :func:`vilu_sklearn.metrics.auroc` (or ``scoring="roc_auc"``)
        as is.

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
        if self.mode != "caption":
            return self._classification_scores(X_img, X_txt)
        n, d = X_img.shape
        if X_txt is None:
            raise ValueError(
                "Caption mode needs the paired captions: "
                "decision_function(X_img, X_txt) with X_txt of shape (n, d)."
            )
        captions = check_candidate_texts(
            X_txt, d, n_rows=n, feature_names=getattr(self, "feature_names_in_", None)
        )
        out = np.empty(n, dtype=np.float64)
        for group in caption_groups(n, int(self.caption_group_size)):
            out[group] = self._group_scores(X_img[group], captions[group])
        return out
