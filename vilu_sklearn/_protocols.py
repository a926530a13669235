"""What a benchmark row was trained with, and the unseen-classes protocol.

* Supervision of an estimator: ``"none"`` (training-free: the scores use no
  training label), ``"y_correct"`` (the VLM's correctness on the training
  images) or ``"labels"`` (also the true class of each training image).
* The unseen-classes protocol of :func:`vilu_sklearn.benchmark`: the classes
  are split by a seeded permutation into seen and unseen ones; every method is
  fitted on the training images of the seen classes with the seen prompts as
  its candidates, and tested on the test images of the unseen classes against
  the unseen prompts (and, generalised, on all test images against all
  prompts). Methods that need statistics of a class they never saw declare it
  (``_unseen_classes = "n/a"``) and get a row that says so.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.base import clone

__all__ = [
    "SUPERVISION_LEVELS",
    "accepts_labels",
    "class_splits",
    "requires_labels",
    "supervision",
    "unseen_capability",
    "format_unseen_markdown",
    "unseen_classes_benchmark",
]

#: from least to most supervised
SUPERVISION_LEVELS: tuple[str, ...] = ("none", "y_correct", "labels")

_NA_UNSEEN = (
    "not applicable: needs statistics of each candidate class (fitted on the "
    "seen classes' prompts only), so it cannot score classes unseen in training"
)
_NA_LABELS = (
    "not applicable: needs the training class labels, which this run does not give"
)


def requires_labels(est: Any) -> bool:
    """Whether ``est`` can only be fitted with the class labels (the probes)."""
    return bool(getattr(est, "_requires_labels", False))


def accepts_labels(est: Any) -> bool:
    """Whether ``est.fit`` takes and uses ``labels`` (ViLU with a posterior head).

    Examples
    --------
    >>> from vilu_sklearn import ViLUClassifier
    >>> from vilu_sklearn._protocols import accepts_labels
    >>> accepts_labels(ViLUClassifier()), accepts_labels(
    ...     ViLUClassifier(posterior_head=False))
    (True, False)
    """
    if "labels" not in inspect.signature(est.fit).parameters:
        return False
    return bool(getattr(est, "posterior_head", True))


def learns_from_labels(est: Any) -> bool:
    """Whether ``est`` is given the class labels when they are available."""
    return requires_labels(est) or accepts_labels(est)


def supervision(est: Any, labels_given: bool) -> str:
    """``"none"``, ``"y_correct"`` or ``"labels"``: what ``est`` was trained on.

    Examples
    --------
    >>> from vilu_sklearn.baselines import MSP, TemperatureScaling
    >>> from vilu_sklearn._protocols import supervision
    >>> supervision(MSP(), True), supervision(TemperatureScaling(), True)
    ('none', 'y_correct')
    """
    if labels_given and learns_from_labels(est):
        return "labels"
    level = getattr(est, "_supervision_level", None)
    return "y_correct" if level is None else str(level())


def unseen_capability(est: Any) -> str:
    """``"ok"``, ``"fallback:<what>"`` or ``"n/a"`` under the unseen-classes protocol.

    Examples
    --------
    >>> from vilu_sklearn.baselines import MSP, RelU
    >>> from vilu_sklearn._protocols import unseen_capability
    >>> unseen_capability(MSP()), unseen_capability(RelU())
    ('ok', 'n/a')
    """
    cap = str(getattr(est, "_unseen_classes", "ok"))
    if not (cap in ("ok", "n/a") or cap.startswith("fallback:")):
        raise ValueError(
            f"{type(est).__name__}._unseen_classes must be 'ok', 'n/a' or "
            f"'fallback:<what>'; got {cap!r}."
        )
    return cap


def class_splits(
    n_classes: int, unseen_fraction: float, n_splits: int, random_state: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded (seen, unseen) partitions of ``range(n_classes)``.

    Split ``s`` takes a permutation of the classes drawn from
    ``default_rng([random_state, s])``; its first ``round(unseen_fraction *
    n_classes)`` entries are unseen. Both parts are sorted and hold at least 2
    classes (a VLM's prediction is a choice between candidates).

    Examples
    --------
    >>> from vilu_sklearn._protocols import class_splits
    >>> [(s.tolist(), u.tolist()) for s, u in class_splits(4, 0.5, 2, 0)]
    [([1, 3], [0, 2]), ([1, 2], [0, 3])]
    """
    n_unseen = int(round(unseen_fraction * n_classes))
    if n_unseen < 2 or n_classes - n_unseen < 2:
        raise ValueError(
            f"unseen_fraction={unseen_fraction:g} of {n_classes} classes gives "
            f"{n_unseen} unseen and {n_classes - n_unseen} seen classes; both "
            "need at least 2."
        )
    if n_splits < 1:
        raise ValueError(f"n_class_splits must be >= 1; got {n_splits}.")
    out = []
    for s in range(n_splits):
        order = np.random.default_rng([random_state, s]).permutation(n_classes)
        out.append((np.sort(order[n_unseen:]), np.sort(order[:n_unseen])))
    return out


def _subset(
    X: np.ndarray, labels: np.ndarray, classes: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``classes`` and their labels re-indexed into ``classes``."""
    position = np.full(n_classes, -1)
    position[classes] = np.arange(len(classes))
    rows = np.isin(labels, classes)
    return X[rows], position[labels[rows]]


def _split_data(
    data: Mapping[str, Any], seen: np.ndarray, unseen: np.ndarray, normalize: bool
) -> dict[str, Any]:
    """Training part (seen classes) and the two test variants of one split."""
    from ._zero_shot import correctness

    K = len(data["X_txt"])
    X_tr, lab_tr = _subset(data["X_img_train"], data["y_train"], seen, K)
    X_un, lab_un = _subset(data["X_img_test"], data["y_test"], unseen, K)
    T_seen, T_unseen = data["X_txt"][seen], data["X_txt"][unseen]
    return {
        "fit": (X_tr, T_seen, correctness(X_tr, T_seen, lab_tr, normalize=normalize)),
        "labels": lab_tr,
        "unseen": (
            X_un,
            T_unseen,
            correctness(X_un, T_unseen, lab_un, normalize=normalize),
        ),
        "all": (data["X_img_test"], data["X_txt"], data["y_test_correct"]),
    }


VARIANTS: tuple[tuple[str, str], ...] = (
    ("unseen", "unseen classes: test images of the unseen classes, unseen prompts"),
    ("all", "generalised: test images of all classes, all prompts"),
)


def _fit_one(
    est: Any, part: Mapping[str, Any], use_labels: bool
) -> tuple[dict[str, np.ndarray], float]:
    X_tr, T_seen, yc = part["fit"]
    kwargs = {"labels": part["labels"]} if use_labels else {}
    start = time.perf_counter()
    est.fit(X_tr, T_seen, yc, **kwargs)
    fit_time = time.perf_counter() - start
    if getattr(est, "interrupted_", False):
        raise KeyboardInterrupt(f"{type(est).__name__}: training was interrupted")
    from ._vilu import UnseenCandidatesWarning

    with warnings.catch_warnings():
        # the row's note says what a method does with the unseen prompts
        warnings.simplefilter("ignore", UnseenCandidatesWarning)
        scores = {
            v: np.asarray(est.decision_function(part[v][0], part[v][1]), dtype=float)
            for v, _ in VARIANTS
        }
    return scores, fit_time


def _not_applicable(est: Any, use_labels: bool) -> str | None:
    if unseen_capability(est) == "n/a":
        return _NA_UNSEEN
    if requires_labels(est) and not use_labels:
        return _NA_LABELS
    return None


def unseen_classes_benchmark(
    estimators: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    unseen_fraction: float,
    n_splits: int,
    normalize: bool,
    fit_labels: bool,
    n_resamples: int,
    confidence_level: float,
    random_state: int,
    reference: str | None,
    emit: Callable[[str], None] | None,
) -> list[dict[str, Any]]:
    """Rows of the unseen-classes protocol (see :func:`vilu_sklearn.benchmark`).

    ``data`` holds ``X_img_train``, ``y_train`` (class indices),
    ``X_img_test``, ``y_test``, ``X_txt`` and ``y_test_correct`` (against all
    prompts). Returns one row per (variant, method).
    """
    from .metrics import failure_report

    K = len(data["X_txt"])
    splits = class_splits(K, unseen_fraction, n_splits, random_state)
    names = list(estimators)
    # results[name][variant] = list over splits of (y_correct, scores)
    results: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {
        n: {v: [] for v, _ in VARIANTS} for n in names
    }
    fit_times: dict[str, list[float]] = {n: [] for n in names}
    na = {n: _not_applicable(estimators[n], fit_labels) for n in names}
    for s, (seen, unseen) in enumerate(splits):
        part = _split_data(data, seen, unseen, normalize)
        for i, name in enumerate(names, 1):
            if na[name] is not None:
                continue
            est = clone(estimators[name])
            if emit:
                emit(f"[split {s + 1}/{len(splits)}, {i}/{len(names)}] {name} ...")
            use_labels = fit_labels and learns_from_labels(est)
            scores, fit_time = _fit_one(est, part, use_labels)
            fit_times[name].append(fit_time)
            for v, _ in VARIANTS:
                results[name][v].append((part[v][2], scores[v]))
    rows = []
    for v, description in VARIANTS:
        for name in names:
            est = estimators[name]
            row: dict[str, Any] = {
                "method": name,
                "protocol": "unseen-classes",
                "variant": v,
                "variant_description": description,
                "supervision": supervision(est, fit_labels and learns_from_labels(est)),
                "unseen_classes": unseen_capability(est),
                "applicable": na[name] is None,
                "n_class_splits": len(splits),
            }
            if na[name] is not None:
                row["note"] = na[name]
                rows.append(row)
                continue
            if row["unseen_classes"].startswith("fallback:"):
                row["note"] = row["unseen_classes"].replace(":", ": ", 1)
            per_split = []
            for s, ((seen, unseen), (y, conf)) in enumerate(
                zip(splits, results[name][v], strict=True)
            ):
                rep = failure_report(y, conf)
                per_split.append(
                    {
                        "split": s,
                        "seen": seen.tolist(),
                        "unseen": unseen.tolist(),
                        "n_test": int(len(y)),
                        "accuracy": float(np.mean(y)),
                        **{k: float(rep[k]) for k in _SPLIT_METRICS},
                    }
                )
            for k in ("accuracy", *_SPLIT_METRICS):
                row[k] = float(np.mean([p[k] for p in per_split]))
            row["fit_time"] = float(np.mean(fit_times[name]))
            row["per_split"] = per_split
            rows.append(row)
    _add_split_bootstrap(
        rows, results, reference, n_resamples, confidence_level, random_state
    )
    return rows


_SPLIT_METRICS = ("auroc", "fpr_at_tpr", "aupr_error", "aurc")


def _fast_auroc(y: np.ndarray, conf: np.ndarray) -> float:
    """AUROC by the rank-sum (ties averaged); NaN without both classes."""
    from scipy.stats import rankdata

    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(conf)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _add_split_bootstrap(
    rows: list[dict[str, Any]],
    results: Mapping[str, Mapping[str, list[tuple[np.ndarray, np.ndarray]]]],
    reference: str | None,
    n_resamples: int,
    confidence_level: float,
    random_state: int,
) -> None:
    """Intervals of the mean AUROC over splits and of its difference to ``reference``.

    Each resample draws the test rows of every split with replacement (the
    same rows for every method: paired) and averages the per-split AUROCs over
    the splits; the class splits themselves are kept fixed.
    """
    alpha = (1 - confidence_level) / 2
    for v, _ in VARIANTS:
        live = [r for r in rows if r["variant"] == v and r["applicable"]]
        ref = next((r for r in live if r["method"] == reference), None)
        if ref is not None:
            for r in live:
                if r is ref:
                    continue
                diffs = [
                    a["auroc"] - b["auroc"]
                    for a, b in zip(ref["per_split"], r["per_split"], strict=True)
                ]
                r["reference"] = ref["method"]
                r["ref_auroc_diff"] = float(np.mean(diffs))
                r["ref_auroc_diff_worst_split"] = float(np.min(diffs))
                r["ref_wins"] = int(np.sum(np.asarray(diffs) > 0))
        if n_resamples <= 0 or not live:
            continue
        rng = np.random.default_rng(random_state)
        n_split = len(live[0]["per_split"])
        boot = {r["method"]: np.empty(n_resamples) for r in live}
        for b in range(n_resamples):
            per_method = {r["method"]: 0.0 for r in live}
            for s in range(n_split):
                y = results[live[0]["method"]][v][s][0]
                idx = rng.integers(0, len(y), len(y))
                for r in live:
                    ys, conf = results[r["method"]][v][s]
                    per_method[r["method"]] += _fast_auroc(ys[idx], conf[idx]) / n_split
            for m, value in per_method.items():
                boot[m][b] = value
        for r in live:
            low, high = np.nanquantile(boot[r["method"]], [alpha, 1 - alpha])
            r["auroc_ci_low"], r["auroc_ci_high"] = float(low), float(high)
            if ref is not None and r is not ref:
                d = boot[ref["method"]] - boot[r["method"]]
                low, high = np.nanquantile(d, [alpha, 1 - alpha])
                r["ref_auroc_diff_ci_low"], r["ref_auroc_diff_ci_high"] = (
                    float(low),
                    float(high),
                )


def _pct(value: Any, sign: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}"


def _interval(row: Mapping[str, Any], key: str, sign: bool = False) -> str:
    text = _pct(row.get(key), sign)
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if text != "n/a" and low is not None and high is not None:
        text += f" [{_pct(low, sign)}, {_pct(high, sign)}]"
    return text


def _unseen_line(row: Mapping[str, Any], notes: list[str]) -> str:
    name = str(row["method"])
    if row.get("note"):
        notes.append(f"{name}: {row['note']}.")
    if not row.get("applicable", True):
        cells = [name, str(row["supervision"]), *["n/a"] * 8]
        return "| " + " | ".join(cells) + " |"
    splits = row.get("per_split") or []
    wins = row.get("ref_wins")
    cells = [
        name,
        str(row["supervision"]),
        _interval(row, "auroc"),
        _pct(row.get("fpr_at_tpr")),
        _pct(row.get("aupr_error")),
        _pct(row.get("aurc")),
        _interval(row, "ref_auroc_diff", sign=True) if "ref_auroc_diff" in row else "",
        _pct(row.get("ref_auroc_diff_worst_split"), sign=True)
        if "ref_auroc_diff" in row
        else "",
        "" if wins is None else f"{wins}/{len(splits)}",
        f"{row.get('fit_time', float('nan')):.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def format_unseen_markdown(rows: list[dict[str, Any]]) -> str:
    """Markdown of the unseen-classes protocol: one table per variant."""
    ref = next((r.get("reference") for r in rows if r.get("reference")), None)
    ref_name = ref or "reference"
    header = [
        "Method",
        "Supervision",
        "AUROC ↑",
        "FPR95 ↓",
        "AUPR-err ↑",
        "AURC ↓",
        f"ΔAUROC {ref_name} − method",
        "worst split Δ",
        f"{ref_name} wins",
        "fit (s)",
    ]
    lines: list[str] = []
    notes: list[str] = []
    n_splits = next((r["n_class_splits"] for r in rows), 0)
    for v, description in VARIANTS:
        part = [r for r in rows if r.get("variant") == v]
        if not part:
            continue
        lines += [
            f"{description} (mean over {n_splits} class splits)",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += [_unseen_line(r, notes if v == VARIANTS[0][0] else []) for r in part]
        lines.append("")
    return "\n".join(lines + list(dict.fromkeys(notes))).rstrip("\n")
