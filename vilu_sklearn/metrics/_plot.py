"""Display classes: failure ROC curve, risk-coverage curve, confidence histograms.

matplotlib is optional (``pip install vilu-sklearn[plot]``) and imported only when
something is drawn. The ROC curve takes successes as the positive class, as
everywhere in the package (docs/conventions.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

from ._common import _check_inputs
from ._ranking import auroc
from ._scorers import _targets_and_confidence
from ._selective import aurc, risk_coverage_curve

__all__ = ["FailureRocDisplay", "RiskCoverageDisplay", "ConfidenceHistogramDisplay"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "Plotting needs matplotlib, an optional dependency: "
            "pip install vilu-sklearn[plot]"
        ) from exc
    return plt


def _axes(ax: Any) -> tuple[Any, Any]:
    if ax is None:
        _, ax = _pyplot().subplots()
    else:
        _pyplot()
    return ax.figure, ax


class _DisplayMixin:
    """What the Display classes share: axes, the legend label, ``from_estimator``.

    As scikit-learn's curve displays share theirs: a Display stores what it
    draws at construction, ``plot`` draws it (setting ``ax_`` and ``figure_``),
    ``from_predictions`` computes it from labels and confidences, and
    ``from_estimator`` takes the confidences from a fitted failure predictor.
    """

    name: str | None

    def _set_axes(self, ax: Any, name: str | None) -> str | None:
        """Set ``figure_`` and ``ax_``; return the name to show."""
        self.figure_, self.ax_ = _axes(ax)
        return self.name if name is None else name

    def _plot_curve(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        ax: Any,
        name: str | None,
        score: str | None,
        axis_labels: tuple[str, str],
        limits: dict[str, tuple[float, float]],
        legend_loc: str,
        **kwargs: Any,
    ) -> None:
        """Draw one line labelled ``"name (score)"``; set ``line_``."""
        name = self._set_axes(ax, name)
        label = name
        if score is not None:
            label = f"{name} ({score})" if name else score
        kwargs.setdefault("label", label)
        (self.line_,) = self.ax_.plot(x, y, **kwargs)
        self.ax_.set_xlabel(axis_labels[0])
        self.ax_.set_ylabel(axis_labels[1])
        for axis, lim in limits.items():
            getattr(self.ax_, f"set_{axis}lim")(*lim)
        if kwargs.get("label"):
            self.ax_.legend(loc=legend_loc)

    @classmethod
    def _from_estimator(
        cls, estimator: Any, X: Any, y: Any, *, name: str | None, **kwargs: Any
    ) -> Any:
        """``from_predictions`` on the estimator's targets and confidences."""
        y_correct, conf = _targets_and_confidence(estimator, X, y)
        name = type(estimator).__name__ if name is None else name
        return cls.from_predictions(  # type: ignore[attr-defined]
            y_correct, conf, name=name, **kwargs
        )


class FailureRocDisplay(_DisplayMixin):
    """ROC curve of failure prediction, successes as the positive class.

    TPR is the share of correct predictions (``y_correct = 1``) accepted by a
    confidence threshold, FPR the share of failures accepted. Create it with
    :meth:`from_predictions` or :meth:`from_estimator`.

    Parameters
    ----------
    fpr : ndarray
        False positive rates (failures accepted), increasing.
    tpr : ndarray
        True positive rates (successes accepted), increasing.
    roc_auc : float, default=None
        AUROC, shown in the legend.
    name : str, default=None
        Name of the curve in the legend.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The ROC curve.
    ax_ : matplotlib Axes
        Axes with the curve.
    figure_ : matplotlib Figure
        Figure containing the curve.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from vilu_sklearn.metrics import FailureRocDisplay
    >>> disp = FailureRocDisplay.from_predictions(
    ...     [1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1], name="MSP")
    >>> disp.roc_auc
    0.75
    >>> disp.line_.get_label()
    'MSP (AUROC = 0.750)'
    """

    def __init__(
        self,
        *,
        fpr: np.ndarray,
        tpr: np.ndarray,
        roc_auc: float | None = None,
        name: str | None = None,
    ):
        self.fpr = fpr
        self.tpr = tpr
        self.roc_auc = roc_auc
        self.name = name

    def plot(
        self, ax: Any = None, *, name: str | None = None, **kwargs: Any
    ) -> FailureRocDisplay:
        """Draw the curve.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        name : str, default=None
            Legend name; overrides the one given at construction.
        **kwargs
            Passed to ``ax.plot``.

        Returns
        -------
        display : FailureRocDisplay
            ``self``, with ``line_``, ``ax_`` and ``figure_`` set.
        """
        self._plot_curve(
            self.fpr,
            self.tpr,
            ax=ax,
            name=name,
            score=None if self.roc_auc is None else f"AUROC = {self.roc_auc:.3f}",
            axis_labels=(
                "False positive rate (failures accepted)",
                "True positive rate (successes accepted)",
            ),
            limits={"x": (-0.01, 1.01), "y": (-0.01, 1.01)},
            legend_loc="lower right",
            **kwargs,
        )
        return self

    @classmethod
    def from_predictions(
        cls,
        y_correct: Any,
        confidence: Any,
        *,
        sample_weight: Any = None,
        name: str | None = None,
        ax: Any = None,
        **kwargs: Any,
    ) -> FailureRocDisplay:
        """Plot the failure ROC curve from labels and confidences.

        Parameters
        ----------
        y_correct : array-like of shape (n_samples,)
            1 where the VLM's prediction is correct (positive class), 0 where
            it is wrong.
        confidence : array-like of shape (n_samples,)
            Confidence scores, higher = more likely correct.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        name : str, default=None
            Legend name.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **kwargs
            Passed to ``ax.plot``.

        Returns
        -------
        display : FailureRocDisplay
        """
        y, conf, w = _check_inputs(y_correct, confidence, sample_weight)
        value = auroc(y, conf, sample_weight=w)
        fpr, tpr, _ = roc_curve(y, conf, sample_weight=w, drop_intermediate=False)
        disp = cls(fpr=fpr, tpr=tpr, roc_auc=value, name=name)
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        sample_weight: Any = None,
        name: str | None = None,
        ax: Any = None,
        **kwargs: Any,
    ) -> FailureRocDisplay:
        """Plot the failure ROC curve of a fitted failure predictor.

        Parameters
        ----------
        estimator : estimator or Pipeline
            Fitted failure predictor; the confidence is its
            ``decision_function`` (see :mod:`vilu_sklearn.metrics` for the
            caption mode).
        X : array-like of shape (n_samples, n_features)
            Image embeddings.
        y : array-like
            ``y_correct`` (classification mode) or the paired caption
            embeddings ``X_txt`` (caption mode).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        name : str, default=None
            Legend name; the estimator's class name by default.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **kwargs
            Passed to ``ax.plot``.

        Returns
        -------
        display : FailureRocDisplay
        """
        return cls._from_estimator(
            estimator, X, y, sample_weight=sample_weight, name=name, ax=ax, **kwargs
        )


class RiskCoverageDisplay(_DisplayMixin):
    """Risk-coverage curve of selective classification, AURC in the legend.

    Selective risk (error rate of the accepted samples) against coverage (share
    accepted) when accepting the most confident predictions first; see
    :func:`risk_coverage_curve`.

    Parameters
    ----------
    coverage : ndarray
        Coverages, increasing.
    risk : ndarray
        Selective risks at those coverages.
    aurc : float, default=None
        AURC (raw scale), shown in the legend.
    name : str, default=None
        Name of the curve in the legend.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The curve.
    ax_ : matplotlib Axes
        Axes with the curve.
    figure_ : matplotlib Figure
        Figure containing the curve.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from vilu_sklearn.metrics import RiskCoverageDisplay
    >>> disp = RiskCoverageDisplay.from_predictions([0, 1], [0.2, 0.7])
    >>> disp.aurc
    0.25
    >>> disp.line_.get_label()
    'AURC = 0.250'
    """

    def __init__(
        self,
        *,
        coverage: np.ndarray,
        risk: np.ndarray,
        aurc: float | None = None,
        name: str | None = None,
    ):
        self.coverage = coverage
        self.risk = risk
        self.aurc = aurc
        self.name = name

    def plot(
        self, ax: Any = None, *, name: str | None = None, **kwargs: Any
    ) -> RiskCoverageDisplay:
        """Draw the curve.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        name : str, default=None
            Legend name; overrides the one given at construction.
        **kwargs
            Passed to ``ax.plot``.

        Returns
        -------
        display : RiskCoverageDisplay
            ``self``, with ``line_``, ``ax_`` and ``figure_`` set.
        """
        self._plot_curve(
            self.coverage,
            self.risk,
            ax=ax,
            name=name,
            score=None if self.aurc is None else f"AURC = {self.aurc:.3f}",
            axis_labels=(
                "Coverage (share of predictions accepted)",
                "Selective risk (error rate when accepted)",
            ),
            limits={"x": (0.0, 1.01)},
            legend_loc="upper left",
            **kwargs,
        )
        return self

    def mark_operating_point(
        self,
        coverage: float,
        risk: float,
        *,
        target_risk: float | None = None,
        label: str | None = "certified threshold",
        **kwargs: Any,
    ) -> RiskCoverageDisplay:
        """Mark an operating point, e.g. a certified threshold, on the curve.

        Call after :meth:`plot`. Sets ``point_`` (and ``target_line_``).

        Parameters
        ----------
        coverage, risk : float
            Coverage and selective risk of the threshold on the plotted data.
        target_risk : float, default=None
            Also draw the target risk as a dashed horizontal line.
        label : str or None, default="certified threshold"
            Legend label of the point.
        **kwargs
            Passed to ``ax.plot`` for the point.

        Returns
        -------
        display : RiskCoverageDisplay
            ``self``.
        """
        kwargs.setdefault("marker", "*")
        kwargs.setdefault("markersize", 12)
        kwargs.setdefault("linestyle", "none")
        (self.point_,) = self.ax_.plot([coverage], [risk], label=label, **kwargs)
        if target_risk is not None:
            self.target_line_ = self.ax_.axhline(
                target_risk, linestyle="--", color="grey", linewidth=1,
                label=f"target risk {target_risk:g}",
            )  # fmt: skip
        self.ax_.legend(loc="upper left")
        return self

    @classmethod
    def from_predictions(
        cls,
        y_correct: Any,
        confidence: Any,
        *,
        sample_weight: Any = None,
        name: str | None = None,
        ax: Any = None,
        threshold: float | None = None,
        target_risk: float | None = None,
        **kwargs: Any,
    ) -> RiskCoverageDisplay:
        """Plot the risk-coverage curve from labels and confidences.

        Parameters
        ----------
        y_correct : array-like of shape (n_samples,)
            1 where the VLM's prediction is correct, 0 where it is wrong.
        confidence : array-like of shape (n_samples,)
            Confidence scores, higher = more likely correct.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        name : str, default=None
            Legend name.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        threshold : float, default=None
            Mark the operating point ``confidence >= threshold`` (e.g. from
            :func:`vilu_sklearn.selective.calibrate_threshold`); ``inf``
            marks coverage 0.
        target_risk : float, default=None
            With ``threshold``: draw the target risk as a dashed line.
        **kwargs
            Passed to ``ax.plot``.

        Returns
        -------
        display : RiskCoverageDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from vilu_sklearn.metrics import RiskCoverageDisplay
        >>> y, conf = [1, 1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1]
        >>> disp = RiskCoverageDisplay.from_predictions(
        ...     y, conf, threshold=0.6, target_risk=0.3)
        >>> [float(v[0]) for v in disp.point_.get_data()]  # coverage, risk
        [0.8, 0.25]
        """
        coverage, risk, _ = risk_coverage_curve(
            y_correct, confidence, sample_weight=sample_weight
        )
        value = aurc(y_correct, confidence, sample_weight=sample_weight)
        disp = cls(coverage=coverage, risk=risk, aurc=value, name=name)
        disp.plot(ax=ax, **kwargs)
        if threshold is not None:
            y, conf, w = _check_inputs(y_correct, confidence, sample_weight)
            acc = conf >= threshold
            cov = float(w[acc].sum() / w.sum())
            r = float(w[acc] @ (1 - y[acc]) / w[acc].sum()) if acc.any() else 0.0
            disp.mark_operating_point(cov, r, target_risk=target_risk)
        return disp

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        sample_weight: Any = None,
        name: str | None = None,
        ax: Any = None,
        threshold: float | None = None,
        target_risk: float | None = None,
        **kwargs: Any,
    ) -> RiskCoverageDisplay:
        """Plot the risk-coverage curve of a fitted failure predictor.

        Parameters
        ----------
        estimator : estimator or Pipeline
            Fitted failure predictor (confidence = ``decision_function``).
        X : array-like of shape (n_samples, n_features)
            Image embeddings.
        y : array-like
            ``y_correct`` (classification mode) or the paired caption
            embeddings ``X_txt`` (caption mode).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        name : str, default=None
            Legend name; the estimator's class name by default.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        threshold, target_risk : float, default=None
            Mark an operating point, see :meth:`from_predictions`.
        **kwargs
            Passed to ``ax.plot``.

        Returns
        -------
        display : RiskCoverageDisplay
        """
        return cls._from_estimator(
            estimator,
            X,
            y,
            sample_weight=sample_weight,
            name=name,
            ax=ax,
            threshold=threshold,
            target_risk=target_risk,
            **kwargs,
        )


class ConfidenceHistogramDisplay(_DisplayMixin):
    """Histograms of the confidence of correct and of wrong predictions.

    Well-separated histograms mean a good failure predictor.

    Parameters
    ----------
    y_correct : ndarray of shape (n_samples,)
        1 where the VLM's prediction is correct, 0 where it is wrong.
    confidence : ndarray of shape (n_samples,)
        Confidence scores.
    sample_weight : ndarray of shape (n_samples,), default=None
        Sample weights.
    bins : int or sequence, default=30
        Bins shared by both histograms.
    name : str, default=None
        Title of the axes.

    Attributes
    ----------
    bars_ : dict
        ``{"correct": BarContainer, "wrong": BarContainer}``.
    ax_ : matplotlib Axes
        Axes with the histograms.
    figure_ : matplotlib Figure
        Figure containing the histograms.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from vilu_sklearn.metrics import ConfidenceHistogramDisplay
    >>> disp = ConfidenceHistogramDisplay.from_predictions(
    ...     [1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1], bins=5)
    >>> sorted(disp.bars_)
    ['correct', 'wrong']
    """

    def __init__(
        self,
        *,
        y_correct: np.ndarray,
        confidence: np.ndarray,
        sample_weight: np.ndarray | None = None,
        bins: Any = 30,
        name: str | None = None,
    ):
        self.y_correct = y_correct
        self.confidence = confidence
        self.sample_weight = sample_weight
        self.bins = bins
        self.name = name

    def plot(
        self,
        ax: Any = None,
        *,
        name: str | None = None,
        density: bool = True,
        **kwargs: Any,
    ) -> ConfidenceHistogramDisplay:
        """Draw both histograms on shared bins.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        name : str, default=None
            Title; overrides the one given at construction.
        density : bool, default=True
            Normalise each histogram to unit area (the two classes usually
            have very different sizes).
        **kwargs
            Passed to both ``ax.hist`` calls.

        Returns
        -------
        display : ConfidenceHistogramDisplay
            ``self``, with ``bars_``, ``ax_`` and ``figure_`` set.
        """
        name = self._set_axes(ax, name)
        y = np.asarray(self.y_correct)
        conf = np.asarray(self.confidence, dtype=np.float64)
        w = None if self.sample_weight is None else np.asarray(self.sample_weight)
        edges = np.histogram_bin_edges(conf, bins=self.bins)
        kwargs.setdefault("alpha", 0.5)
        self.bars_ = {}
        for key, value, color in (("correct", 1, "tab:blue"), ("wrong", 0, "tab:red")):
            mask = y == value
            kw = {"color": color, **kwargs}
            _, _, bars = self.ax_.hist(
                conf[mask],
                bins=edges,
                weights=None if w is None else w[mask],
                density=density and bool(mask.any()),
                label=f"{key} (n={int(mask.sum())})",
                **kw,
            )
            self.bars_[key] = bars
        self.ax_.set_xlabel("Confidence")
        self.ax_.set_ylabel("Density" if density else "Count")
        if name:
            self.ax_.set_title(name)
        self.ax_.legend()
        return self

    @classmethod
    def from_predictions(
        cls,
        y_correct: Any,
        confidence: Any,
        *,
        sample_weight: Any = None,
        bins: Any = 30,
        name: str | None = None,
        ax: Any = None,
        **kwargs: Any,
    ) -> ConfidenceHistogramDisplay:
        """Plot the histograms from labels and confidences.

        Parameters
        ----------
        y_correct : array-like of shape (n_samples,)
            1 where the VLM's prediction is correct, 0 where it is wrong.
        confidence : array-like of shape (n_samples,)
            Confidence scores, higher = more likely correct.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        bins : int or sequence, default=30
            Shared bins.
        name : str, default=None
            Title.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ConfidenceHistogramDisplay
        """
        y, conf, w = _check_inputs(y_correct, confidence, sample_weight)
        disp = cls(
            y_correct=y,
            confidence=conf,
            sample_weight=None if sample_weight is None else w,
            bins=bins,
            name=name,
        )
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        sample_weight: Any = None,
        bins: Any = 30,
        name: str | None = None,
        ax: Any = None,
        **kwargs: Any,
    ) -> ConfidenceHistogramDisplay:
        """Plot the histograms of a fitted failure predictor's confidence.

        Parameters
        ----------
        estimator : estimator or Pipeline
            Fitted failure predictor (confidence = ``decision_function``).
        X : array-like of shape (n_samples, n_features)
            Image embeddings.
        y : array-like
            ``y_correct`` (classification mode) or the paired caption
            embeddings ``X_txt`` (caption mode).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        bins : int or sequence, default=30
            Shared bins.
        name : str, default=None
            Title; the estimator's class name by default.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ConfidenceHistogramDisplay
        """
        return cls._from_estimator(
            estimator,
            X,
            y,
            sample_weight=sample_weight,
            bins=bins,
            name=name,
            ax=ax,
            **kwargs,
        )
