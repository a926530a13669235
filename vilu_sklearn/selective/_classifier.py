"""``SelectiveClassifier``: accept or abstain, with a certified selective risk."""

from __future__ import annotations

import warnings
from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._persistence import PersistMixin, register_estimator
from .._validation import check_embeddings, check_y_correct
from ._threshold import certify_coverage, certify_threshold

__all__ = ["SelectiveClassifier"]


def _both_classes(classes: np.ndarray, y_enc: np.ndarray) -> np.ndarray:
    """``[wrong label, correct label]``, completing a single observed class.

    ``predict`` indexes ``classes_`` with 0 (abstain) and 1 (accept), so both
    are needed even when every label was correct (or every one wrong).
    """
    if classes.shape[0] == 2:
        return classes
    if classes.dtype.kind == "b":
        return np.array([False, True])
    only = classes[0]
    if int(y_enc[0]) == 1:  # all correct: 1 (or True); wrong is 0
        return np.array([0, only], dtype=np.result_type(classes.dtype, np.int64))
    # all wrong: 0 or -1; correct is 1
    return np.array([only, 1], dtype=np.result_type(classes.dtype, np.int64))


@register_estimator
class SelectiveClassifier(
    PersistMixin, MetaEstimatorMixin, ClassifierMixin, BaseEstimator
):
    """Accept a VLM prediction or abstain, with a certified error rate.

    A meta-estimator around any failure predictor of the package (ViLU or a
    baseline). It fits the failure predictor, then calibrates a threshold on
    its confidence with :func:`~vilu_sklearn.selective.certify_threshold` on
    labelled calibration data: with probability at least ``1 - delta`` over the
    calibration draw, the error rate among the accepted predictions on new
    i.i.d. data is at most ``target_risk`` (``method="crc_joint"``: the share
    of all predictions accepted and wrong, in expectation; ``"scan"``: a
    heuristic without guarantee).
    No guarantee holds under distribution shift.

    The dual question is answered with ``target_risk=None`` and
    ``target_coverage`` set: the threshold accepts that share of the
    calibration data and ``risk_bound_`` is the selective risk certified for it
    (:func:`~vilu_sklearn.selective.certify_coverage`).

    Call forms are those of the wrapped estimator: ``fit(X_img, X_txt,
    y_correct)``, ``fit(X_img, y_correct)`` with ``text_embeddings`` set on
    it, or, in caption mode, ``fit(X_img, X_txt)`` with paired captions.

    Parameters
    ----------
    estimator : estimator, default=None
        A failure predictor with ``fit`` and ``decision_function`` (higher =
        more likely correct); ``None`` uses ``ViLUClassifier()``. With
        ``cv="prefit"`` it must already be fitted and is used as is.
    target_risk : float or None, default=0.1
        Largest acceptable error rate among accepted predictions, in [0, 1].
    target_coverage : float or None, default=None
        The dual question: the share of predictions to accept, in (0, 1];
        needs ``target_risk=None``.
    delta : float, default=0.1
        Allowed probability that the guarantee fails, in (0, 1).
    method : {"ltt", "sgr", "crc_joint", "scan"}, default="ltt"
        Calibration procedure, see
        :func:`~vilu_sklearn.selective.calibrate_threshold`. ``"crc"`` is a
        deprecated name of ``"scan"`` (``FutureWarning``).
    p_value : {"binomial", "hoeffding_bentkus"}, default="binomial"
        P-values of ``method="ltt"``.
    cv : {"split", "prefit"}, default="split"
        ``"split"``: fit a clone of ``estimator`` on part of the data and
        calibrate on the rest; ``"prefit"``: ``estimator`` is fitted already
        and all the data passed to ``fit`` are calibration data.
    calibration_size : float, default=0.3
        Share of the samples kept for calibration with ``cv="split"``.
    random_state : int, RandomState instance or None, default=None
        Seed of the calibration split.

    Attributes
    ----------
    estimator_ : estimator
        The fitted failure predictor.
    threshold_ : float
        Accept where the confidence is ``>= threshold_``; ``inf`` accepts
        nothing (a ``UserWarning`` was raised at fit).
    risk_bound_ : float
        The certified selective risk of ``threshold_``.
    coverage_ : float
        Share of the calibration samples accepted.
    n_calibration_ : int
        Number of calibration samples.
    classes_ : ndarray of shape (2,)
        Labels of ``y_correct``; ``predict`` returns ``classes_[1]`` (accept) or
        ``classes_[0]`` (abstain). Where the labels held one class only (e.g.
        an all-correct calibration set), the other one is completed from the
        0/1 (or False/True, -1/1) convention.
    n_features_in_ : int
        Width of the image embeddings.

    Examples
    --------
    >>> from vilu_sklearn import correctness
    >>> from vilu_sklearn.baselines import MSP
    >>> from vilu_sklearn.datasets import make_vlm_embeddings
    >>> from vilu_sklearn.selective import SelectiveClassifier
    >>> d = make_vlm_embeddings(6000, 10, 32, accuracy=0.7, random_state=0)
    >>> y = correctness(d.X_img, d.X_txt, d.labels)
    >>> clf = SelectiveClassifier(MSP(logit_scale=d.logit_scale), target_risk=0.2,
    ...                           method="sgr", random_state=0)
    >>> clf = clf.fit(d.X_img, d.X_txt, y)     # 30% of the VLM's answers are wrong
    >>> bool(clf.risk_bound_ <= 0.2), bool(0.0 < clf.coverage_ < 1.0)
    (True, True)
    >>> accept = clf.predict(d.X_img, d.X_txt)   # 1 = accept, 0 = abstain
    >>> bool(0.0 < accept.mean() < 1.0)
    True
    >>> round(float(1 - y[accept == 1].mean()), 2)   # error rate where accepted
    0.17
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "estimator": [HasMethods(["fit", "decision_function"]), None],
        "target_risk": [Interval(Real, 0, 1, closed="both"), None],
        "target_coverage": [Interval(Real, 0, 1, closed="right"), None],
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "method": [
            StrOptions({"ltt", "sgr", "crc_joint", "scan", "crc"}, deprecated={"crc"})
        ],
        "p_value": [StrOptions({"binomial", "hoeffding_bentkus"})],
        "cv": [StrOptions({"split", "prefit"})],
        "calibration_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator: Any = None,
        *,
        target_risk: float | None = 0.1,
        target_coverage: float | None = None,
        delta: float = 0.1,
        method: str = "ltt",
        p_value: str = "binomial",
        cv: str = "split",
        calibration_size: float = 0.3,
        random_state: Any = None,
    ):
        self.estimator = estimator
        self.target_risk = target_risk
        self.target_coverage = target_coverage
        self.delta = delta
        self.method = method
        self.p_value = p_value
        self.cv = cv
        self.calibration_size = calibration_size
        self.random_state = random_state

    # ------------------------------------------------------------- helpers
    def _base_estimator(self) -> Any:
        if self.estimator is not None:
            return self.estimator
        from .._vilu import ViLUClassifier

        return ViLUClassifier()

    def _mode(self) -> str:
        return str(getattr(self._base_estimator(), "mode", "classification"))

    def _check_targets(self) -> None:
        if (self.target_risk is None) == (self.target_coverage is None):
            raise ValueError(
                "Set exactly one of target_risk and target_coverage (the dual "
                "question needs target_risk=None); got target_risk="
                f"{self.target_risk!r}, target_coverage={self.target_coverage!r}."
            )

    def _split_args(
        self, X: Any, y: Any, y_correct: Any
    ) -> tuple[np.ndarray, Any, np.ndarray | None, np.ndarray]:
        """(X_img, texts or captions, y_correct encoded or None, classes)."""
        X_img = check_embeddings(X, name="X_img")
        validate_data(self, X, skip_check_array=True, reset=True)
        if self._mode() == "caption":
            if y is None or y_correct is not None:
                raise ValueError(
                    "In caption mode call fit(X_img, X_txt) with the paired "
                    "captions; y_correct is computed from them."
                )
            return X_img, y, None, np.array([0, 1])
        texts = y if y_correct is not None else None
        labels = y_correct if y_correct is not None else y
        y_enc, classes = check_y_correct(labels, n_samples=X_img.shape[0])
        return X_img, texts, y_enc, _both_classes(classes, y_enc)

    def _fit_estimator(
        self, X_img: np.ndarray, texts: Any, y_enc: np.ndarray | None
    ) -> tuple[Any, np.ndarray]:
        """Fit (or take) the estimator; return it and the calibration rows."""
        n = X_img.shape[0]
        if self.cv == "prefit":
            check_is_fitted(self._base_estimator())
            return self._base_estimator(), np.arange(n)
        strat = y_enc if y_enc is not None and np.bincount(y_enc).min() >= 2 else None
        fit_idx, cal_idx = train_test_split(
            np.arange(n),
            test_size=self.calibration_size,
            random_state=self.random_state,
            stratify=strat,
        )
        est = clone(self._base_estimator())
        rows = np.sort(fit_idx)
        if self._mode() == "caption":
            est.fit(X_img[rows], np.asarray(texts)[rows])
        elif texts is None:
            est.fit(X_img[rows], y_enc[rows])  # type: ignore[index]
        else:
            est.fit(X_img[rows], texts, y_enc[rows])  # type: ignore[index]
        return est, np.sort(cal_idx)

    def _calibration_scores(
        self, X_img: np.ndarray, texts: Any, y_enc: np.ndarray | None, rows: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        est = self.estimator_
        if self._mode() == "caption":
            from .._zero_shot import caption_correctness

            caps = np.asarray(texts)[rows]
            y_cal = caption_correctness(
                X_img[rows],
                caps,
                group_size=int(getattr(est, "caption_group_size", 1024)),
                normalize=bool(getattr(est, "normalize", True)),
            )
            return np.asarray(est.decision_function(X_img[rows], caps)), y_cal
        conf = est.decision_function(X_img[rows], texts)
        return np.asarray(conf, dtype=float), y_enc[rows]  # type: ignore[index]

    # ----------------------------------------------------------------- API
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any = None, y_correct: Any = None) -> SelectiveClassifier:
        """Fit the failure predictor and calibrate the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        y : array-like
            ``y_correct`` (two-argument form, the estimator holds
            ``text_embeddings``), the candidate texts (K, d) (three-argument
            form) or the paired captions (caption mode).
        y_correct : array-like of shape (n_samples,), default=None
            Correctness labels of the three-argument form: 1 where the VLM's
            prediction is correct, 0 where it is wrong.

        Returns
        -------
        self : SelectiveClassifier
            Fitted.
        """
        self._check_targets()
        X_img, texts, y_enc, classes = self._split_args(X, y, y_correct)
        self.classes_ = classes
        self.estimator_, cal = self._fit_estimator(X_img, texts, y_enc)
        conf, y_cal = self._calibration_scores(X_img, texts, y_enc, cal)
        if self.target_coverage is not None:
            res = certify_coverage(
                conf, y_cal, target_coverage=self.target_coverage, delta=self.delta
            )
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = certify_threshold(
                    conf,
                    y_cal,
                    target_risk=float(self.target_risk),  # type: ignore[arg-type]
                    delta=self.delta,
                    method=self.method,
                    p_value=self.p_value,
                )
            for w in caught:
                warnings.warn(str(w.message), w.category, stacklevel=2)
        self.threshold_ = res.threshold
        self.risk_bound_ = res.risk_bound
        self.coverage_ = res.coverage
        self.n_calibration_ = int(len(cal))
        return self

    def confidence(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """The wrapped failure predictor's confidence (higher = more likely correct).

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like, default=None
            Candidate texts or paired captions, as for the wrapped estimator.

        Returns
        -------
        confidence : ndarray of shape (n_samples,)
            Its ``decision_function``; accepted where ``>= threshold_``.
        """
        check_is_fitted(self)
        check_embeddings(X, name="X_img")
        validate_data(self, X, skip_check_array=True, reset=False)
        return np.asarray(self.estimator_.decision_function(X, X_txt), dtype=float)

    def predict(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Accept (``classes_[1]``, i.e. 1) or abstain (``classes_[0]``, i.e. 0).

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like, default=None
            Candidate texts or paired captions, as for the wrapped estimator.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            ``classes_[1]`` where the confidence is ``>= threshold_``.
        """
        accept = self.confidence(X, X_txt) >= self.threshold_
        return np.asarray(self.classes_[accept.astype(int)])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.classifier_tags.poor_score = True
        return tags
