"""Side-by-side benchmark of failure predictors on one set of embeddings."""

from __future__ import annotations

import csv
import io
import json
import numbers
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.base import clone

from ._base import check_candidate_texts
from ._protocols import (
    _NA_LABELS,
    SUPERVISION_LEVELS,
    learns_from_labels,
    requires_labels,
    supervision,
    unseen_classes_benchmark,
)
from ._validation import check_embeddings, check_y_correct
from ._zero_shot import caption_correctness, correctness

__all__ = ["benchmark", "default_estimators", "format_table", "TABLE_COLUMNS"]

# (metric key, column title) of the paper-style table
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("auroc", "AUROC ↑"),
    ("fpr_at_tpr", "FPR95 ↓"),
    ("aupr_error", "AUPR-err ↑"),
    ("aurc", "AURC ↓"),
)


def default_estimators(
    *,
    logit_scale: float = 100.0,
    random_state: int | None = 0,
    device: str = "auto",
    mode: str = "classification",
    caption_group_size: int = 1024,
    max_epochs: int | None = None,
    verbose: int = 0,
    labels: bool = True,
) -> dict[str, Any]:
    """ViLU and every baseline of the package, ready for :func:`benchmark`.

    Parameters
    ----------
    logit_scale : float, default=100.0
        CLIP's temperature, passed to every estimator.
    random_state : int or None, default=0
        Seed of the learned estimators.
    device : str, default="auto"
        Device of the torch-based estimators.
    mode : {"classification", "caption"}, default="classification"
        In caption mode only the estimators that support it are returned.
    caption_group_size : int, default=1024
        Candidate-set size of caption mode.
    max_epochs : int, default=None
        Overrides the epochs of the torch-based estimators (None keeps their
        defaults).
    verbose : int, default=0
        Verbosity of the torch-based estimators.
    labels : bool, default=True
        Classification mode: whether the benchmark will pass the training
        class labels; then the label-trained probes
        (:class:`~vilu_sklearn.baselines.LinearProbe`,
        :class:`~vilu_sklearn.baselines.MLPProbe`) are included, the baselines
        that match the supervision of a ViLU trained with labels.

    Returns
    -------
    estimators : dict of str to estimator
        Unfitted estimators by name: the class name of each baseline
        (``"ViLU"`` for the default :class:`~vilu_sklearn.ViLUClassifier`,
        ``"ViLU (paper)"`` for ``ViLUClassifier(**REFERENCE_PARAMS)``, the
        paper's head and recipe, trained on ``y_correct`` only), which is also
        its row in the table and its ``--methods`` value.

    Examples
    --------
    >>> from vilu_sklearn import default_estimators
    >>> list(default_estimators())[:4]
    ['ViLU', 'ViLU (paper)', 'LVU', 'MSP']
    >>> list(default_estimators())[-2:], "MLPProbe" in default_estimators(labels=False)
    (['LinearProbe', 'MLPProbe'], False)
    """
    from . import baselines as bl
    from ._vilu import REFERENCE_PARAMS, ViLUClassifier

    torch_kw: dict[str, Any] = dict(
        logit_scale=logit_scale,
        random_state=random_state,
        device=device,
        verbose=verbose,
    )
    if max_epochs is not None:
        torch_kw["max_epochs"] = max_epochs
    shared: dict[str, Any] = dict(logit_scale=logit_scale)
    if mode == "caption":
        cap: dict[str, Any] = dict(
            mode="caption", caption_group_size=caption_group_size
        )
        return {
            "ViLU": ViLUClassifier(**torch_kw, **cap),
            "MSP": bl.MSP(**shared, **cap),
            "MCM": bl.MCM(**cap),
            "Entropy": bl.Entropy(**shared, **cap),
            "Doctor": bl.Doctor(**shared, **cap),
            "Energy": bl.Energy(**shared, **cap),
            "MaxLogit": bl.MaxLogit(**shared, **cap),
            "Margin": bl.Margin(**shared, **cap),
            "KNN": bl.KNN(**shared, **cap),
        }
    paper = {**REFERENCE_PARAMS, **torch_kw}
    probes: dict[str, Any] = {}
    if labels:
        probes = {
            "LinearProbe": bl.LinearProbe(**shared),
            "MLPProbe": bl.MLPProbe(**torch_kw),
        }
    return {
        "ViLU": ViLUClassifier(**torch_kw),
        "ViLU (paper)": ViLUClassifier(**paper),
        "LVU": bl.LVU(**torch_kw),
        "MSP": bl.MSP(**shared),
        "MCM": bl.MCM(),
        "Entropy": bl.Entropy(**shared),
        "Doctor": bl.Doctor(**shared),
        "Energy": bl.Energy(**shared),
        "MaxLogit": bl.MaxLogit(**shared),
        "Margin": bl.Margin(**shared),
        "TemperatureScaling": bl.TemperatureScaling(**shared),
        "RelU": bl.RelU(**shared),
        "TrustScore": bl.TrustScore(**shared),
        "KNN": bl.KNN(**shared),
        "Mahalanobis": bl.Mahalanobis(**shared),
        "RelativeMahalanobis": bl.RelativeMahalanobis(**shared),
        "TrustVLM": bl.TrustVLM(**shared),
        "ICPE": bl.ICPE(**shared),
        **probes,
    }


def _progress_printer(stream: Any) -> Callable[[str], None]:
    def emit(message: str) -> None:
        print(message, file=stream, flush=True)

    return emit


def _emitter(
    progress: bool | Callable[[str], None],
) -> Callable[[str], None] | None:
    if callable(progress):
        return progress
    return _progress_printer(sys.stderr) if progress else None


def benchmark(
    estimators: Mapping[str, Any],
    X_img_train: Any,
    X_txt: Any,
    y_train: Any = None,
    X_img_test: Any = None,
    y_test: Any = None,
    *,
    X_txt_test: Any = None,
    y_kind: str = "labels",
    mode: str = "classification",
    caption_group_size: int = 1024,
    normalize: bool = True,
    n_resamples: int = 200,
    confidence_level: float = 0.95,
    random_state: int = 0,
    as_frame: bool = True,
    progress: bool | Callable[[str], None] = False,
    target_risk: float = 0.05,
    delta: float = 0.1,
    reference: str | None = "auto",
    fit_labels: bool = True,
    protocol: str = "fixed",
    unseen_fraction: float = 0.5,
    n_class_splits: int = 5,
) -> Any:
    """Fit failure predictors on one split and compare them on another.

    Every estimator is cloned, fitted on the training embeddings and scored on
    the test embeddings with every metric of :func:`vilu_sklearn.metrics.failure_report`
    (with seeded bootstrap confidence intervals), plus its fit and predict wall
    times.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    estimators : mapping of str to estimator
        Unfitted estimators with the package's interface, by display name (see
        :func:`default_estimators`).
    X_img_train : array-like of shape (n_train, d)
        Training image embeddings.
    X_txt : array-like of shape (K, d) or (n_train, d)
        Class-prompt embeddings (classification) or the training captions,
        paired with ``X_img_train`` (caption mode).
    y_train : array-like of shape (n_train,), default=None
        True class indices (``y_kind="labels"``) or ``y_correct``
        (``y_kind="correct"``); unused in caption mode.
    X_img_test : array-like of shape (n_test, d)
        Test image embeddings.
    y_test : array-like of shape (n_test,), default=None
        As ``y_train``, for the test images.
    X_txt_test : array-like of shape (n_test, d), default=None
        Caption mode: the test captions.
    y_kind : {"labels", "correct"}, default="labels"
        What ``y_train``/``y_test`` hold.
    mode : {"classification", "caption"}, default="classification"
        Data kind; caption-mode correctness is in-group retrieval with
        ``caption_group_size`` candidates.
    caption_group_size : int, default=1024
        Candidate-set size of caption mode.
    normalize : bool, default=True
        L2-normalise embeddings when computing correctness.
    n_resamples : int, default=200
        Bootstrap resamples for the confidence intervals (0 disables them).
    confidence_level : float, default=0.95
        Level of the intervals.
    random_state : int, default=0
        Seed of the bootstrap.
    as_frame : bool, default=True
        Return a pandas DataFrame (which needs pandas: ``pip install
        vilu-sklearn[pandas]``) or, with False, a list of dicts. The type
        depends on this argument only, never on what is installed.
    progress : bool or callable, default=False
        Report progress on stderr (True) or through a callable taking a message.
    target_risk : float, default=0.05
        Target selective risk of the ``certified_coverage`` column: the share
        of test predictions accepted by the threshold that
        :func:`vilu_sklearn.selective.calibrate_threshold` (Learn-Then-Test)
        certifies from the test split for this risk (with probability
        ``1 - delta``, on new data of the same distribution).
    delta : float, default=0.1
        Failure probability of that certificate.
    reference : str or None, default="auto"
        The method compared, with a paired bootstrap (the same resamples for
        both), with the best other method (by AUROC) among those trained with
        the same or less supervision, and with the best label-trained probe
        when probes ran: one of the names of ``estimators``; ``"auto"`` is
        ``"ViLU"`` when it is among them, else no comparison; None skips it.
    fit_labels : bool, default=True
        Classification mode with ``y_kind="labels"``: give the training class
        labels to the estimators whose ``fit`` takes ``labels`` (ViLU with a
        posterior head, which learns from them, and the label-trained probes);
        the others get ``y_correct`` only. Estimators that need the labels
        (the probes) get a row marked not applicable when no labels are given.
    protocol : {"fixed", "unseen-classes"}, default="fixed"
        ``"fixed"``: train and test on the same classes. ``"unseen-classes"``
        (classification mode, ``y_kind="labels"``): the classes are split by
        a seeded permutation into seen and unseen ones (``n_class_splits``
        splits, ``unseen_fraction`` of the classes unseen); each method is
        fitted on the training images of the seen classes with the seen
        prompts as its candidates (``y_correct`` against them), then tested
        on the test images of the unseen classes against the unseen prompts
        (variant ``"unseen"``) and on all test images against all prompts
        (variant ``"all"``, generalised). Metrics are means over the splits;
        see docs/benchmark.md.
    unseen_fraction : float in (0, 1), default=0.5
        Share of the classes unseen in training (``protocol="unseen-classes"``).
    n_class_splits : int, default=5
        Number of class splits (``protocol="unseen-classes"``).

    Returns
    -------
    table : pandas.DataFrame or list of dict
        A DataFrame (``as_frame=True``) or a list of dicts (``as_frame=False``)
        with one row per estimator: ``method``, ``accuracy`` (the VLM's), every
        metric with ``_ci_low``/``_ci_high`` columns, ``fit_time`` and
        ``predict_time`` in seconds. The test labels and confidences are kept
        for plots: in ``frame.attrs["arrays"]`` (by method), or in each row's
        ``"_arrays"``.
        Each row also holds ``supervision`` (``"none"``, ``"y_correct"`` or
        ``"labels"``: the training labels the method used), ``applicable``
        (False, with a ``note``, for a method that could not run under this
        protocol or without labels; its metrics are absent), an optional
        ``note``, and ``certified_coverage`` (with ``certified_threshold``,
        ``certified_target_risk``, ``certified_delta``); the row of
        ``reference`` holds ``paired_vs`` (the best other method by AUROC
        with the same or less supervision) and ``paired_auroc_diff`` and
        ``paired_fpr_at_tpr_diff`` (reference minus that method, with
        ``_ci_low``/``_ci_high`` when ``n_resamples > 0``), and the same
        ``paired_probe_*`` keys against the best label-trained probe.
        Under ``protocol="unseen-classes"`` there is one row per variant and
        method, with the means over the splits, ``per_split`` (each split's
        classes and metrics), ``auroc_ci_low``/``auroc_ci_high`` and
        ``ref_auroc_diff`` (reference minus this method, mean over splits,
        with ``_ci_low``/``_ci_high`` and ``_worst_split``), from a paired
        bootstrap of the test rows within each split (the class splits
        fixed); no certified coverage.

    Examples
    --------
    >>> from vilu_sklearn import benchmark
    >>> from vilu_sklearn.baselines import MSP, Doctor
    >>> from vilu_sklearn.datasets import make_vlm_embeddings
    >>> d = make_vlm_embeddings(600, 5, 32, accuracy=0.7, random_state=0)
    >>> rows = benchmark({"MSP": MSP(), "Doctor": Doctor()},
    ...                  d.X_img[:300], d.X_txt, d.labels[:300],
    ...                  d.X_img[300:], d.labels[300:], n_resamples=0,
    ...                  as_frame=False)
    >>> [row["method"] for row in rows]
    ['MSP', 'Doctor']
    """
    emit = _emitter(progress)
    reference = _check_benchmark_args(
        estimators,
        flags={"as_frame": as_frame, "normalize": normalize, "fit_labels": fit_labels},
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        target_risk=target_risk,
        delta=delta,
        reference=reference,
    )
    if as_frame:
        _require_pandas()
    if X_img_test is None:
        raise ValueError("X_img_test is required.")
    if mode not in ("classification", "caption"):
        raise ValueError(f"mode must be 'classification' or 'caption'; got {mode!r}.")
    if y_kind not in ("labels", "correct"):
        raise ValueError(f"y_kind must be 'labels' or 'correct'; got {y_kind!r}.")
    if protocol not in ("fixed", "unseen-classes"):
        raise ValueError(
            f"protocol must be 'fixed' or 'unseen-classes'; got {protocol!r}."
        )
    fit_args, predict_args, y_test_correct = _benchmark_inputs(
        X_img_train,
        X_txt,
        y_train,
        X_img_test,
        y_test,
        X_txt_test=X_txt_test,
        y_kind=y_kind,
        mode=mode,
        caption_group_size=caption_group_size,
        normalize=normalize,
    )
    report_kw = dict(
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        random_state=random_state,
    )
    if protocol == "unseen-classes":
        rows = _unseen_rows(
            estimators, fit_args, predict_args, y_train, y_test, y_test_correct,
            y_kind=y_kind, mode=mode, unseen_fraction=unseen_fraction,
            n_class_splits=n_class_splits, normalize=normalize,
            fit_labels=fit_labels, reference=reference, emit=emit, **report_kw,
        )  # fmt: skip
        return _as_table(rows, as_frame)
    rows = []
    names = list(estimators)
    labels_given = _labels_usable(fit_labels, y_kind, mode)
    for i, name in enumerate(names, 1):
        est = clone(estimators[name])
        if requires_labels(est) and not labels_given:
            rows.append(_na_row(name, est, _NA_LABELS))
            if emit:
                emit(f"[{i}/{len(names)}] {name}: not applicable (needs labels)")
            continue
        if emit:
            emit(f"[{i}/{len(names)}] {name}: fitting ...")
        label_kw = _label_kwargs(est, y_train, fit_labels, y_kind, mode)
        row = _fixed_row(
            name, est, label_kw, fit_args, predict_args, y_test_correct,
            report_kw, target_risk, delta,
        )  # fmt: skip
        rows.append(row)
        if emit:
            emit(
                f"[{i}/{len(names)}] {name}: AUROC {100 * row['auroc']:.1f}, "
                f"fit {row['fit_time']:.1f} s, predict {row['predict_time']:.2f} s"
            )
    for row in rows:
        if row["applicable"]:
            row["y_correct"] = y_test_correct
    _add_paired(rows, reference, n_resamples, confidence_level, random_state)
    return _as_table(rows, as_frame)


def _is_fraction(value: Any, *, low_closed: bool = False) -> bool:
    """A real number (not a bool) in (0, 1), or [0, 1) with ``low_closed``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    v = float(value)
    return (0 <= v if low_closed else 0 < v) and v < 1


def _check_benchmark_args(
    estimators: Mapping[str, Any],
    *,
    flags: Mapping[str, Any],
    n_resamples: Any,
    confidence_level: Any,
    target_risk: Any,
    delta: Any,
    reference: Any,
) -> str | None:
    """Check :func:`benchmark`'s options before anything is fitted.

    Returns the reference method (``"auto"`` resolved: ViLU when it runs).
    """
    for name, value in flags.items():
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{name} must be True or False; got {value!r}.")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, numbers.Integral):
        raise ValueError(f"n_resamples must be an integer >= 0; got {n_resamples!r}.")
    if n_resamples < 0:
        raise ValueError(f"n_resamples must be an integer >= 0; got {n_resamples}.")
    if not _is_fraction(confidence_level):
        raise ValueError(
            f"confidence_level must be a number in (0, 1); got {confidence_level!r}."
        )
    if not _is_fraction(target_risk, low_closed=True):
        raise ValueError(
            f"target_risk must be a number in [0, 1); got {target_risk!r}."
        )
    if not _is_fraction(delta):
        raise ValueError(f"delta must be a number in (0, 1); got {delta!r}.")
    names = list(estimators)
    if reference == "auto":
        return "ViLU" if "ViLU" in names else None
    if reference is not None and reference not in names:
        raise ValueError(
            f"reference must be one of the estimators' names ({', '.join(names)}), "
            f"'auto' or None; got {reference!r}."
        )
    return reference if reference is None else str(reference)


def _fixed_row(
    name: str,
    est: Any,
    label_kw: dict[str, Any],
    fit_args: tuple[Any, ...],
    predict_args: tuple[Any, ...],
    y_test_correct: np.ndarray,
    report_kw: dict[str, Any],
    target_risk: float,
    delta: float,
) -> dict[str, Any]:
    """Fit one estimator, score the test split: its row of the table."""
    from .metrics import failure_report

    start = time.perf_counter()
    est.fit(*fit_args, **label_kw)
    fit_time = time.perf_counter() - start
    if getattr(est, "interrupted_", False):
        # Ctrl-C during training: a truncated model is no row of the table
        raise KeyboardInterrupt(f"{name}: training was interrupted")
    start = time.perf_counter()
    confidence = np.asarray(est.decision_function(*predict_args), dtype=float)
    predict_time = time.perf_counter() - start
    report = failure_report(y_test_correct, confidence, **report_kw)
    row: dict[str, Any] = {
        "method": name,
        "supervision": supervision(est, bool(label_kw)),
        "applicable": True,
        "probe": requires_labels(est),
    }
    note = _fitted_note(est)
    if note:
        row["note"] = note
    row.update(report)
    row.update(_certified(y_test_correct, confidence, target_risk, delta))
    row["fit_time"] = fit_time
    row["predict_time"] = predict_time
    row["confidence"] = confidence  # dropped from the table, kept for plots
    return row


def _labels_usable(fit_labels: bool, y_kind: str, mode: str) -> bool:
    return bool(fit_labels) and y_kind == "labels" and mode == "classification"


def _label_kwargs(
    est: Any, y_train: Any, fit_labels: bool, y_kind: str, mode: str
) -> dict[str, Any]:
    """``{"labels": y_train}`` for an estimator whose fit uses class labels."""
    if _labels_usable(fit_labels, y_kind, mode) and learns_from_labels(est):
        return {"labels": np.asarray(y_train)}
    return {}


def _na_row(name: str, est: Any, note: str) -> dict[str, Any]:
    """The row of a method that could not run: what it needs, no metrics."""
    return {
        "method": name,
        "supervision": supervision(est, requires_labels(est)),
        "applicable": False,
        "note": note,
    }


def _fitted_note(est: Any) -> str | None:
    """What the table should say about a fitted estimator's choice."""
    if getattr(est, "gini_fallback_", False):
        return (
            "validation chose a (temperature, lbd) whose D is the Gini fallback "
            "1 - I: the ranking of Doctor (alpha)"
        )
    return None


def _unseen_rows(
    estimators: Mapping[str, Any],
    fit_args: tuple[Any, ...],
    predict_args: tuple[Any, ...],
    y_train: Any,
    y_test: Any,
    y_test_correct: np.ndarray,
    *,
    y_kind: str,
    mode: str,
    unseen_fraction: float,
    n_class_splits: int,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Check the inputs of the unseen-classes protocol and run it."""
    from ._zero_shot import check_class_labels

    if mode != "classification" or y_kind != "labels":
        raise ValueError(
            "protocol='unseen-classes' needs classification mode and the class "
            "labels (y_kind='labels'): the classes are what it splits."
        )
    if not (isinstance(unseen_fraction, float | int) and 0 < unseen_fraction < 1):
        raise ValueError(
            f"unseen_fraction must be a number in (0, 1); got {unseen_fraction!r}."
        )
    X_img_train, X_txt = fit_args[0], fit_args[1]
    K = len(X_txt)
    data = {
        "X_img_train": X_img_train,
        "y_train": check_class_labels(y_train, len(X_img_train), K),
        "X_img_test": predict_args[0],
        "y_test": check_class_labels(y_test, len(predict_args[0]), K),
        "X_txt": X_txt,
        "y_test_correct": y_test_correct,
    }
    return unseen_classes_benchmark(
        estimators,
        data,
        unseen_fraction=float(unseen_fraction),
        n_splits=int(n_class_splits),
        **kwargs,
    )


def _benchmark_inputs(
    X_img_train: Any,
    X_txt: Any,
    y_train: Any,
    X_img_test: Any,
    y_test: Any,
    *,
    X_txt_test: Any,
    y_kind: str,
    mode: str,
    caption_group_size: int,
    normalize: bool,
) -> tuple[tuple[Any, ...], tuple[Any, ...], np.ndarray]:
    """Validate the data of :func:`benchmark`.

    Returns the arguments of ``fit`` and of ``decision_function``, and the test
    ``y_correct``.
    """
    X_img_train = check_embeddings(X_img_train, name="X_img_train")
    d = X_img_train.shape[1]
    X_img_test = check_embeddings(
        X_img_test, name="X_img_test", dim=d, dim_source="X_img_train"
    )
    if mode == "caption":
        X_txt = check_candidate_texts(X_txt, d, n_rows=X_img_train.shape[0])
        if X_txt_test is None:
            raise ValueError("Caption mode needs X_txt_test, the test captions.")
        X_txt_test = check_candidate_texts(X_txt_test, d, n_rows=X_img_test.shape[0])
        y_test_correct = caption_correctness(
            X_img_test, X_txt_test, group_size=caption_group_size, normalize=normalize
        )
        fit_args: tuple[Any, ...] = (X_img_train, X_txt)
        predict_args: tuple[Any, ...] = (X_img_test, X_txt_test)
    else:
        X_txt = check_candidate_texts(X_txt, d)
        if y_train is None or y_test is None:
            raise ValueError("Classification mode needs y_train and y_test.")
        if y_kind == "labels":
            _warn_if_correctness(
                (X_img_train, X_img_test), X_txt, (y_train, y_test), normalize
            )
            y_train_correct = correctness(
                X_img_train, X_txt, np.asarray(y_train), normalize=normalize
            )
            y_test_correct = correctness(
                X_img_test, X_txt, np.asarray(y_test), normalize=normalize
            )
        else:
            y_train_correct = check_y_correct(
                y_train, n_samples=X_img_train.shape[0], name="y_train"
            )[0]
            y_test_correct = check_y_correct(
                y_test, n_samples=X_img_test.shape[0], name="y_test"
            )[0]
        fit_args = (X_img_train, X_txt, y_train_correct)
        predict_args = (X_img_test, X_txt)
    return fit_args, predict_args, y_test_correct


def _warn_if_correctness(
    X_imgs: tuple[np.ndarray, np.ndarray],
    X_txt: np.ndarray,
    ys: tuple[Any, Any],
    normalize: bool,
) -> None:
    """Warn when class labels (``y_kind="labels"``) look like 0/1 correctness.

    That is: only the values 0 and 1 with K > 2 candidates, while the VLM
    predicts class 0 or 1 for fewer than half of the images.
    """
    import warnings

    from ._zero_shot import _predict_argmax

    arrays = [np.asarray(y) for y in ys]
    if X_txt.shape[0] <= 2 or any(
        y.ndim != 1 or y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all()
        for y in arrays
    ):
        return
    pred = np.concatenate([_predict_argmax(X, X_txt, normalize) for X in X_imgs])
    share = float(np.mean(pred <= 1))
    if share >= 0.5:
        return
    y = np.concatenate(arrays)
    warnings.warn(
        f"y_train and y_test hold only the values 0 and 1 while X_txt has "
        f"{X_txt.shape[0]} classes, and the VLM predicts class 0 or 1 for only "
        f"{100 * share:.1f} % of the images: they look like 0/1 correctness, not "
        f"class labels. Read as labels (y_kind='labels') they give a VLM "
        f"accuracy of {100 * float(np.mean(pred == y)):.1f} %; read as "
        f"correctness {100 * float(np.mean(y)):.1f} %. Pass y_kind='correct' if "
        "they say whether the VLM was right.",
        UserWarning,
        stacklevel=4,
    )


def _require_pandas() -> None:
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise ImportError(
            "benchmark(as_frame=True) returns a pandas DataFrame, and pandas is not "
            "installed: pip install 'vilu-sklearn[pandas]', or pass as_frame=False "
            "for a list of dicts."
        ) from None


def _certified(
    y_correct: np.ndarray, confidence: np.ndarray, target_risk: float, delta: float
) -> dict[str, float]:
    """Coverage of the threshold certified by LTT for ``target_risk``."""
    import warnings

    from .selective import calibrate_threshold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # inf: coverage 0
        t = calibrate_threshold(
            confidence, y_correct, target_risk=target_risk, delta=delta
        )
    return {
        "certified_coverage": float(np.mean(confidence >= t)),
        "certified_threshold": float(t),
        "certified_target_risk": float(target_risk),
        "certified_delta": float(delta),
    }


def _add_paired(
    rows: list[dict[str, Any]],
    reference: str | None,
    n_resamples: int,
    confidence_level: float,
    random_state: int,
) -> None:
    """Paired bootstrap of AUROC and FPR95: reference minus the best other.

    The best other is taken among the methods with the same or less
    supervision than the reference (``paired_*``), and among the
    label-trained probes (``paired_probe_*``).
    """
    live = [r for r in rows if r["applicable"]]
    ref = [r for r in live if r["method"] == reference]
    if not ref:
        return
    row = ref[0]
    level = SUPERVISION_LEVELS.index(row["supervision"])
    peers = [
        r
        for r in live
        if r is not row and SUPERVISION_LEVELS.index(r["supervision"]) <= level
    ]
    probes = [r for r in live if r is not row and r.get("probe")]
    for prefix, group in (("paired", peers), ("paired_probe", probes)):
        if group:
            best = max(group, key=lambda r: r["auroc"])
            _paired_against(
                row, best, prefix, n_resamples, confidence_level, random_state
            )


def _paired_against(
    row: dict[str, Any],
    best: dict[str, Any],
    prefix: str,
    n_resamples: int,
    confidence_level: float,
    random_state: int,
) -> None:
    from .metrics import paired_bootstrap_ci

    row[f"{prefix}_vs"] = best["method"]
    row[f"{prefix}_vs_supervision"] = best["supervision"]
    for metric in ("auroc", "fpr_at_tpr"):
        key = f"{prefix}_{metric}_diff"
        row[key] = row[metric] - best[metric]
        if n_resamples > 0:
            res = paired_bootstrap_ci(
                metric,
                row["y_correct"],
                row["confidence"],
                best["confidence"],
                n_resamples=n_resamples,
                confidence_level=confidence_level,
                random_state=random_state,
            )
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = res.low, res.high


def _as_table(rows: list[dict[str, Any]], as_frame: bool) -> Any:
    plain = [
        {k: v for k, v in row.items() if not isinstance(v, np.ndarray)} for row in rows
    ]
    if not as_frame:
        for row, full in zip(plain, rows, strict=True):
            row["_arrays"] = {
                k: v for k, v in full.items() if isinstance(v, np.ndarray)
            }
        return plain
    import pandas as pd

    frame = pd.DataFrame(plain)
    frame.attrs["arrays"] = {
        row["method"]: {k: v for k, v in row.items() if isinstance(v, np.ndarray)}
        for row in rows
        if "confidence" in row  # a method that did not run has no arrays
    }
    return frame


def _absent(key: str, value: Any, row: Mapping[str, Any]) -> bool:
    """A frame's filler for a key that this row does not have (NaN or None)."""
    missing = value is None or (isinstance(value, float) and value != value)
    if not missing:
        return False
    optional = key.startswith(("paired_", "ref_")) or key in _OPTIONAL_KEYS
    return optional or row.get("applicable") is False


# keys that only some rows have
_OPTIONAL_KEYS = frozenset({"note", "reference", "per_split", "probe"})


def _rows(table: Any) -> list[dict[str, Any]]:
    if isinstance(table, list):
        return [{k: v for k, v in row.items() if k != "_arrays"} for row in table]
    records: list[dict[str, Any]] = table.to_dict(orient="records")
    # a frame gives every row the columns of every other row, as NaN
    return [{k: v for k, v in row.items() if not _absent(k, v, row)} for row in records]


def _cell(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key, float("nan"))
    if value is None or not np.isfinite(value):
        return "n/a"
    text = f"{100 * value:.1f}"
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
        text += f" [{100 * low:.1f}, {100 * high:.1f}]"
    return text


def format_table(table: Any, fmt: str = "markdown") -> str:
    """Render a :func:`benchmark` table as markdown (paper style), CSV or JSON.

    The markdown table shows AUROC ↑, FPR95 ↓, AUPR-err ↑ and AURC ↓ in percent
    with their bootstrap intervals, and the fit and predict times; CSV and JSON
    hold every column at full precision (metrics as fractions).

    Parameters
    ----------
    table : pandas.DataFrame or list of dict
        Output of :func:`benchmark`.
    fmt : {"markdown", "csv", "json"}, default="markdown"
        Output format.

    Returns
    -------
    text : str
        The rendered table.

    Examples
    --------
    >>> from vilu_sklearn import format_table
    >>> rows = [{"method": "MSP", "accuracy": 0.7, "auroc": 0.8, "fpr_at_tpr": 0.6,
    ...          "aupr_error": 0.5, "aurc": 0.1, "fit_time": 0.0,
    ...          "predict_time": 0.01}]
    >>> print(format_table(rows))
    | Method | AUROC ↑ | FPR95 ↓ | AUPR-err ↑ | AURC ↓ | fit (s) | predict (s) |
    |---|---|---|---|---|---|---|
    | MSP | 80.0 | 60.0 | 50.0 | 10.0 | 0.0 | 0.01 |
    """
    rows = _rows(table)
    if fmt == "json":  # strict JSON: inf and NaN become null
        return json.dumps(_strict(rows), indent=2, default=float)
    if fmt == "csv":
        buffer = io.StringIO()
        keys = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            {
                k: json.dumps(_strict(v)) if isinstance(v, list | dict) else v
                for k, v in row.items()
            }
            for row in rows
        )
        return buffer.getvalue()
    if fmt != "markdown":
        raise ValueError(f"fmt must be 'markdown', 'csv' or 'json'; got {fmt!r}.")
    if any(row.get("protocol") == "unseen-classes" for row in rows):
        from ._protocols import format_unseen_markdown

        return format_unseen_markdown(rows)
    has_sup = any("supervision" in r for r in rows)
    header = [
        "Method",
        *(["Supervision"] if has_sup else []),
        *(title for _, title in TABLE_COLUMNS),
        "fit (s)",
        "predict (s)",
    ]
    certified = next((r for r in rows if "certified_coverage" in r), None)
    if certified:
        header.insert(-2, _certified_title(certified))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes: list[str] = []
    for row in rows:
        name = str(row["method"])
        if row.get("note"):
            notes.append(f"{name}{'*' * (len(notes) + 1)}: {row['note']}.")
            name += "*" * len(notes)
        cells = [name, *([str(row.get("supervision", ""))] if has_sup else [])]
        cells += [_cell(row, key) for key, _ in TABLE_COLUMNS]
        if certified:
            cells.append(_cell(row, "certified_coverage"))
        cells += [_seconds(row, "fit_time", 1), _seconds(row, "predict_time", 2)]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", *notes]
    lines += _paired_lines(rows)
    return "\n".join(lines)


def _seconds(row: Mapping[str, Any], key: str, digits: int) -> str:
    value = row.get(key)
    return "n/a" if value is None else f"{value:.{digits}f}"


def _strict(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, at any depth."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return value


def _certified_title(row: Mapping[str, Any]) -> str:
    risk = 100 * float(row.get("certified_target_risk", 0.05))
    return f"Cov@{risk:g}%✓ (δ={float(row.get('certified_delta', 0.1)):g}) ↑"


def _diff(row: Mapping[str, Any], key: str) -> str:
    text = f"{100 * row[key]:+.1f}"
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is not None and high is not None:
        excl = " (excludes 0)" if low > 0 or high < 0 else " (includes 0)"
        text += f" [{100 * low:+.1f}, {100 * high:+.1f}]{excl}"
    return text


def _paired_lines(rows: list[dict[str, Any]]) -> list[str]:
    paired = [r for r in rows if isinstance(r.get("paired_vs"), str)]
    if not paired:
        return []
    r = paired[0]
    lines = [
        "",
        f"{r['method']} ({r['supervision']}) − {r['paired_vs']} "
        f"({r['paired_vs_supervision']}; the best by AUROC of the methods with "
        "the same or less supervision), paired bootstrap on the same resamples: "
        f"ΔAUROC {_diff(r, 'paired_auroc_diff')}, "
        f"ΔFPR95 {_diff(r, 'paired_fpr_at_tpr_diff')}",
    ]
    if isinstance(r.get("paired_probe_vs"), str) and (
        r["paired_probe_vs"] != r["paired_vs"]
    ):
        lines += [
            "",
            f"{r['method']} − {r['paired_probe_vs']} (the best label-trained "
            "probe by AUROC), paired bootstrap: "
            f"ΔAUROC {_diff(r, 'paired_probe_auroc_diff')}, "
            f"ΔFPR95 {_diff(r, 'paired_probe_fpr_at_tpr_diff')}",
        ]
    return lines
