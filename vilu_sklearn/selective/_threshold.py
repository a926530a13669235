"""Certified accept/abstain thresholds: Learn-Then-Test, SGR, conformal risk control.

A prediction is *accepted* where ``confidence >= threshold``. The *selective
risk* of a threshold is the error rate among the accepted predictions, on the
distribution the calibration data were drawn from.

Every method works on the calibration data grouped at their unique confidence
values, sorted from the most to the least confident: for each candidate
threshold ``t`` (a calibration confidence), ``n_t`` samples are accepted and
``k_t`` of them are wrong. Conditional on ``n_t``, the accepted samples of a
fixed threshold are i.i.d. draws of the accepted sub-population, so ``k_t`` is
binomial with ``n_t`` trials and the threshold's selective risk as success
probability: that is what the p-values and bounds below use.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import beta, binom, norm

from ..metrics._common import _check_fraction, _check_inputs

__all__ = [
    "CertifiedThreshold",
    "calibrate_threshold",
    "certify_coverage",
    "certify_threshold",
]

_METHODS = ("ltt", "sgr", "crc_joint", "scan", "crc")
_DEPRECATED_CRC = (
    "method='crc' is deprecated and will be removed in a future release: it "
    "was never conformal risk control (the selective risk is not monotone in "
    "the threshold, and no theorem covers the scan). It is now called "
    "method='scan', a heuristic without a guarantee, and behaves as before. "
    "For a guarantee use method='ltt' or 'sgr' (selective risk, with "
    "probability 1 - delta) or 'crc_joint' (conformal risk control of the "
    "share of all predictions that are accepted and wrong, in expectation)."
)
_P_VALUES = ("binomial", "hoeffding_bentkus")


class CertifiedThreshold(NamedTuple):
    """A calibrated threshold with what is certified about it.

    Attributes
    ----------
    threshold : float
        Accept a prediction where ``confidence >= threshold``; ``inf`` accepts
        nothing.
    risk_bound : float
        The certified selective risk: with probability at least ``1 - delta``
        over the calibration draw, the error rate among accepted predictions
        on new i.i.d. data is at most this (``"ltt"``, ``"sgr"``,
        ``"coverage"``). For ``"crc_joint"``, the bound on the *expected*
        share of all predictions that are accepted and wrong; for ``"scan"``
        (and the deprecated ``"crc"``), only the target the heuristic aimed
        at, not a certificate.
    coverage : float
        Share of the calibration samples accepted by ``threshold``.
    method : str
        ``"ltt"``, ``"sgr"``, ``"crc_joint"``, ``"scan"``, ``"crc"`` or
        ``"coverage"`` (the dual question, :func:`certify_coverage`).

    Examples
    --------
    >>> from vilu_sklearn.selective import CertifiedThreshold
    >>> CertifiedThreshold(0.7, 0.05, 0.6, "ltt").coverage
    0.6
    """

    threshold: float
    risk_bound: float
    coverage: float
    method: str


class _Curve(NamedTuple):
    """Calibration data grouped at unique confidences, most confident first."""

    thresholds: np.ndarray  # unique confidences, decreasing
    n_accepted: np.ndarray  # samples with confidence >= threshold
    n_errors: np.ndarray  # wrong predictions among them
    n: int


def _curve(confidence: Any, y_correct: Any) -> _Curve:
    y, conf, _ = _check_inputs(y_correct, confidence)
    order = np.argsort(-conf, kind="stable")
    c, wrong = conf[order], 1 - y[order]
    last = np.flatnonzero(np.r_[c[1:] != c[:-1], True])  # last index of each tie
    n_acc = last + 1
    return _Curve(c[last], n_acc, np.cumsum(wrong)[last], int(c.shape[0]))


def _p_binomial(k: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """P(Binomial(n, alpha) <= k): small when the risk is below alpha."""
    return np.where(n > 0, binom.cdf(k, n, alpha), 1.0)


def _p_hoeffding_bentkus(k: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """Hoeffding-Bentkus p-value of Bates et al. (2021) for a [0, 1] loss."""
    n_safe = np.maximum(n, 1)
    r = np.minimum(k / n_safe, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        h1 = np.where(r > 0, r * np.log(r / alpha), 0.0) + np.where(
            r < 1, (1 - r) * np.log((1 - r) / (1 - alpha)), 0.0
        )
    hoeffding = np.exp(-n_safe * h1)
    bentkus = math.e * binom.cdf(np.ceil(n_safe * k / n_safe), n_safe, alpha)
    p = np.minimum(np.minimum(hoeffding, bentkus), 1.0)
    return np.where(n > 0, p, 1.0)


_P_FUNCS: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "binomial": _p_binomial,
    "hoeffding_bentkus": _p_hoeffding_bentkus,
}


def _risk_upper_bound(k: np.ndarray, n: np.ndarray, level: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound, exceeded with probability <= level."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        ub = beta.ppf(1 - level, k + 1, np.maximum(n - k, 1e-300))
    return np.where(k >= n, 1.0, np.where(n > 0, ub, 1.0))


def _zero_error_size(alpha: float, delta: float) -> int:
    """Accepted samples needed to certify ``alpha`` with no error at all."""
    if alpha <= 0:
        return 2**62
    return int(math.ceil(math.log(delta) / math.log1p(-alpha)))


# Learn-Then-Test's fallback procedure: two grids of accepted-sample counts,
# fixed before any label is seen (they depend on target_risk only).
_LTT_GRID = np.arange(40)
#: Share of delta spread over the "tail" grid (robustness to early errors).
_LTT_TAIL_SHARE = 0.5
#: The tail grid starts at this many samples per unit of target_risk.
_LTT_TAIL_START = 6.0


def _ltt_levels(curve: _Curve, alpha: float, delta: float) -> np.ndarray:
    """Test level of every threshold in the LTT fallback procedure.

    Two grids of accepted-sample counts, both in units of ``1 / alpha``:

    * the *start* grid ``2**j / alpha``: grid point ``j`` gets the length of
      ``[0, delta]`` intersected with ``[(1 - alpha)**m_j, (1 - alpha)**m_{j-1})``
      (``(1 - alpha)**m`` is the p-value of a clean accepted set of ``m``), so
      almost all of it sits at the first count where a clean set can pass;
    * the *tail* grid ``6 * 2**j / alpha`` with ``delta / ((j + 1)(j + 2))``,
      so that errors among the most confident samples do not stop everything.

    Each grid's levels sum to at most ``delta``; they are weighted ``1 -
    _LTT_TAIL_SHARE`` and ``_LTT_TAIL_SHARE``. Every level is a non-decreasing
    function of ``delta``. A count maps to the first threshold
    accepting at least that many calibration samples. No label is used.
    """
    j = _LTT_GRID
    n_groups = curve.thresholds.shape[0]
    start = np.ceil(2.0**j / alpha - 1e-9)
    zero = np.exp(start * math.log1p(-alpha))  # p-value of a clean set of that size
    band = np.clip(np.minimum(delta, np.r_[1.0, zero[:-1]]) - zero, 0.0, None)
    tail = np.ceil(_LTT_TAIL_START * 2.0**j / alpha - 1e-9)
    level = np.zeros(n_groups)
    for counts, share in (
        (start, (1 - _LTT_TAIL_SHARE) * band),
        (tail, _LTT_TAIL_SHARE * delta / ((j + 1) * (j + 2))),
    ):
        g = np.searchsorted(curve.n_accepted, counts)
        inside = g < n_groups
        np.add.at(level, g[inside], share[inside])
    return level


def _fallback(p: np.ndarray, level: np.ndarray) -> int | None:
    """Last hypothesis rejected by the fallback procedure (Wiens, 2003).

    Hypothesis ``g`` is tested at its own level plus the level of ``g - 1``
    when ``g - 1`` was rejected (a run of rejections carries its level on; a
    failure loses it). Returns the index of the last rejected hypothesis.
    """
    n = p.shape[0]
    starts = np.flatnonzero(level > 0)
    best: int | None = None
    carry = 0.0
    for k in range(starts.size):
        s = int(starts[k])
        end = int(starts[k + 1]) if k + 1 < starts.size else n
        lv = carry + float(level[s])
        fails = np.flatnonzero(p[s:end] > lv)
        n_pass = int(fails[0]) if fails.size else end - s
        if n_pass:
            best = s + n_pass - 1
        carry = lv if n_pass == end - s else 0.0
    return best


def _clean_size(alpha: float, delta: float, method: str) -> int:
    """Fewest accepted samples, all correct, with which ``method`` can certify."""
    if method != "ltt" or alpha <= 0:
        return _zero_error_size(alpha, delta)
    counts = np.unique(
        np.ceil(np.r_[1.0, _LTT_TAIL_START] * 2.0 ** _LTT_GRID[:, None] / alpha - 1e-9)
    )
    virtual = _Curve(counts, counts, np.zeros_like(counts), int(counts[-1]))
    level = _ltt_levels(virtual, alpha, delta)
    ok = np.flatnonzero(level >= np.exp(counts * math.log1p(-alpha)))
    return int(counts[ok[0]]) if ok.size else 2**62


def _needed_size(curve: _Curve, alpha: float, delta: float, method: str) -> str:
    """Rough calibration size that would certify ``alpha``, as a sentence."""
    if alpha <= 0:
        return (
            "A selective risk of exactly 0 cannot be certified from any finite "
            "calibration set; use a target_risk > 0."
        )
    risk = curve.n_errors / curve.n_accepted
    cov = curve.n_accepted / curve.n
    clean = _clean_size(alpha, delta, method)
    first = int(np.searchsorted(curve.n_accepted, clean))
    if first < risk.shape[0] and risk[first] >= alpha:
        return (
            f"Among the {int(curve.n_accepted[first])} most confident calibration "
            f"samples the error rate is already {risk[first]:.3f} >= target_risk: "
            "the confidence is unreliable at its top, so more samples of the same "
            "kind would not help (a larger target_risk might)."
        )
    z = norm.ppf(1 - delta)
    best = np.inf
    for r, c in zip(risk, cov, strict=True):
        if r >= alpha:
            continue
        if r == 0:
            need = clean
        else:
            need = z**2 * alpha * (1 - alpha) / (alpha - r) ** 2
        best = min(best, max(need, clean) / c)
    if not np.isfinite(best):
        return (
            "The empirical error rate is at least target_risk at every threshold "
            "of this calibration set, so more samples of the same kind would not "
            "help: the confidence does not separate enough errors."
        )
    if best <= curve.n:
        return (
            "The error rate is below target_risk at some thresholds, but not "
            "by enough for the tests at this size (or a cluster of errors sits "
            "among the most confident samples); a calibration set a few times "
            "larger may certify one."
        )
    return (
        f"With error rates like these, roughly {int(math.ceil(best)):,} "
        f"calibration samples would be needed (this set has {curve.n:,})."
    )


def _warn_nothing(curve: _Curve, alpha: float, delta: float, method: str) -> None:
    if method == "crc_joint":
        need = math.ceil(1 / alpha - 1 - 1e-9) if alpha > 0 else None
        advice = (
            "A share of exactly 0 cannot be certified; use a target_risk > 0."
            if need is None
            else f"Even the most confident threshold has (errors + 1) / "
            f"(n + 1) > target_risk: at least {need:,} calibration samples would "
            "be needed, more with confident errors."
        )
        warnings.warn(
            f"calibrate_threshold(method='crc_joint'): no threshold meets "
            f"target_risk={alpha:g} from {curve.n} calibration sample(s); "
            f"returning threshold=inf (accept nothing). {advice}",
            UserWarning,
            stacklevel=3,
        )
        return
    warnings.warn(
        f"calibrate_threshold(method={method!r}): no threshold could be "
        f"certified for target_risk={alpha:g} with delta={delta:g} from "
        f"{curve.n} calibration sample(s); returning threshold=inf (accept "
        f"nothing). {_needed_size(curve, alpha, delta, method)}",
        UserWarning,
        stacklevel=3,
    )


def _accept_all(curve: _Curve, method: str) -> CertifiedThreshold:
    return CertifiedThreshold(float(curve.thresholds[-1]), 1.0, 1.0, method)


def _nothing(method: str) -> CertifiedThreshold:
    return CertifiedThreshold(float("inf"), 0.0, 0.0, method)


def _found(curve: _Curve, g: int, bound: float, method: str) -> CertifiedThreshold:
    cov = float(curve.n_accepted[g] / curve.n)
    return CertifiedThreshold(float(curve.thresholds[g]), float(bound), cov, method)


def _ltt(curve: _Curve, alpha: float, delta: float, p_value: str) -> int | None:
    """Learn-Then-Test with the fallback procedure over the thresholds.

    The hypotheses "the selective risk of threshold ``g`` exceeds ``alpha``"
    are ordered from the most to the least confident threshold, with the
    levels of :func:`_ltt_levels` (summing to at most ``delta``), and tested by
    the fallback procedure. Returns the least confident rejected threshold.
    """
    if alpha <= 0:  # a risk of exactly 0 is never certified
        return None
    p = _P_FUNCS[p_value](curve.n_errors, curve.n_accepted, alpha)
    return _fallback(p, _ltt_levels(curve, alpha, delta))


def _sgr(curve: _Curve, alpha: float, delta: float) -> tuple[int, float] | None:
    """Selection with guaranteed risk (Geifman & El-Yaniv, 2017).

    Binary search for the number ``m`` of most confident groups to accept
    (``m = 0`` accepts nothing and needs no test). Each of its at most
    ``ceil(log2(G + 1))`` steps bounds the risk at level ``delta / steps``
    (union bound), so every tested threshold is covered at once. Returns the
    index of the least confident threshold that passed, with its bound. The
    bound is not monotone in the threshold, so the search may miss a better
    threshold, but never certifies one without the union bound's guarantee.
    """
    n_groups = curve.thresholds.shape[0]
    level = delta / max(1, math.ceil(math.log2(n_groups + 1)))
    lo, hi = 0, n_groups
    bound_lo = 0.0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        g = mid - 1
        bound = float(_risk_upper_bound(curve.n_errors[g], curve.n_accepted[g], level))
        if bound <= alpha:
            lo, bound_lo = mid, bound
        else:
            hi = mid - 1
    return (lo - 1, bound_lo) if lo > 0 else None


def _scan(curve: _Curve, alpha: float) -> int | None:
    """Heuristic scan with the corrected risk ``(k + 1) / (n + 1)``; no guarantee.

    Scanning from confident to less confident thresholds (from the number of
    accepted samples at which half the target rate would pass), keep the
    thresholds whose corrected risk is at most ``alpha``; stop at the first
    that is not. This was once called conformal risk control, which it is not:
    the selective risk is not monotone in the threshold.
    """
    n = np.arange(1, 200_001)
    ok = np.flatnonzero((np.floor(alpha * n / 2) + 1) / (n + 1) <= alpha)
    start = int(n[ok[0]]) if ok.size else curve.n
    if start > curve.n:  # small calibration set: start where 0 errors passes
        start = math.ceil(1 / alpha - 1 - 1e-9)
    first = int(np.searchsorted(curve.n_accepted, min(start, curve.n)))
    corrected = (curve.n_errors[first:] + 1) / (curve.n_accepted[first:] + 1)
    fail = np.flatnonzero(corrected > alpha)
    n_pass = fail[0] if fail.size else corrected.size
    return first + int(n_pass) - 1 if n_pass > 0 else None


def _crc_joint(curve: _Curve, alpha: float) -> int | None:
    """Conformal risk control of the share of predictions accepted and wrong.

    The loss of a sample at threshold ``t`` is 1 where it is accepted and
    wrong; it can only fall as ``t`` rises. CRC (Angelopoulos et al., 2024,
    bound ``B = 1``) takes the lowest threshold with ``(k_t + 1) / (n + 1) <=
    alpha``, ``k_t`` the wrong accepted calibration samples: with ``k_t``
    non-decreasing down the thresholds, the last group with ``k_t <= alpha (n
    + 1) - 1``. None when even the most confident group has too many.
    """
    allowed = alpha * (curve.n + 1) - 1
    ok = np.flatnonzero(curve.n_errors <= allowed + 1e-12)
    return int(ok[-1]) if ok.size else None


def _check_delta(delta: Any) -> float:
    """``delta`` as a float in the open interval (0, 1)."""
    ok = isinstance(delta, int | float | np.number) and not isinstance(
        delta, bool | np.bool_
    )
    d = float(delta) if ok else math.nan
    if not (0 < d < 1):  # also refuses NaN
        raise ValueError(f"delta must be a number in (0, 1); got {delta!r}.")
    return d


def _check_method_args(
    target_risk: Any, delta: Any, method: Any, p_value: Any
) -> tuple[float, float]:
    alpha = _check_fraction(target_risk, "target_risk", allow_zero=True)
    d = _check_delta(delta)
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
    if not isinstance(p_value, str) or p_value not in _P_VALUES:
        raise ValueError(f"p_value must be one of {_P_VALUES}; got {p_value!r}.")
    return alpha, d


def certify_threshold(
    confidence: Any,
    y_correct: Any,
    *,
    target_risk: float,
    delta: float = 0.1,
    method: str = "ltt",
    p_value: str = "binomial",
) -> CertifiedThreshold:
    """Calibrate a threshold for a target selective risk, with its certificate.

    Same as :func:`calibrate_threshold`, but returns the threshold together
    with its certified risk bound and its coverage on the calibration data.
    For ``"ltt"`` the certified bound is ``target_risk``; for ``"sgr"`` it is
    the (smaller or equal) binomial bound of the chosen threshold; for
    ``"crc_joint"`` it is ``target_risk`` as a bound on the expected share of
    predictions accepted and wrong; ``"scan"`` certifies nothing. When nothing
    is certified the threshold is ``inf``, the risk bound 0 (nothing is
    accepted) and a ``UserWarning`` says roughly how many calibration samples
    would be needed.

    Parameters
    ----------
    confidence : array-like of shape (n_samples,)
        Confidences of the calibration samples, higher = more likely correct.
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    target_risk : float
        Largest acceptable error rate among accepted predictions, in [0, 1].
    delta : float, default=0.1
        Allowed probability, over the calibration draw, that the guarantee
        fails; in (0, 1). Unused by ``"crc_joint"`` and ``"scan"``.
    method : {"ltt", "sgr", "crc_joint", "scan"}, default="ltt"
        See :func:`calibrate_threshold`; ``"crc"`` is a deprecated name of
        ``"scan"`` (``FutureWarning``).
    p_value : {"binomial", "hoeffding_bentkus"}, default="binomial"
        P-values of ``"ltt"``: the exact binomial tail, or the Hoeffding-Bentkus
        bound (valid for any loss in [0, 1], more conservative for 0/1 errors).

    Returns
    -------
    result : CertifiedThreshold
        ``(threshold, risk_bound, coverage, method)``.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.selective import certify_threshold
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(size=5000)
    >>> y = (rng.uniform(size=5000) < 0.5 + 0.5 * conf).astype(int)
    >>> res = certify_threshold(conf, y, target_risk=0.1, method="sgr")
    >>> bool(0.6 < res.threshold < 0.9), bool(res.risk_bound <= 0.1)
    (True, True)
    """
    alpha, d = _check_method_args(target_risk, delta, method, p_value)
    curve = _curve(confidence, y_correct)
    if alpha >= 1:
        return _accept_all(curve, method)
    if method == "crc":
        warnings.warn(_DEPRECATED_CRC, FutureWarning, stacklevel=2)
    if method == "sgr":
        found = _sgr(curve, alpha, d)
        if found is not None:
            return _found(curve, found[0], found[1], method)
    else:
        if method == "ltt":
            g = _ltt(curve, alpha, d, p_value)
        elif method == "crc_joint":
            g = _crc_joint(curve, alpha)
        else:
            g = _scan(curve, alpha)
        if g is not None:
            return _found(curve, g, alpha, method)
    _warn_nothing(curve, alpha, d, method)
    return _nothing(method)


def calibrate_threshold(
    confidence: Any,
    y_correct: Any,
    *,
    target_risk: float,
    delta: float = 0.1,
    method: str = "ltt",
    p_value: str = "binomial",
) -> float:
    """Certified confidence threshold for a target selective risk.

    A prediction is accepted where ``confidence >= threshold``. With
    ``method="ltt"`` or ``"sgr"``, the error rate among the accepted
    predictions on new data drawn i.i.d. from the same distribution as the
    calibration data is at most ``target_risk`` with probability at least
    ``1 - delta`` over the draw of the calibration data (marginally: not for
    every calibration set, and not under distribution shift).

    * ``"ltt"``: Learn-Then-Test (Angelopoulos et al., 2021). The null
      hypothesis of a threshold is "its selective risk exceeds
      ``target_risk``"; its p-value is the binomial tail (or Hoeffding-Bentkus)
      of the errors among the accepted samples. The thresholds, ordered from
      the most to the least confident, are tested with the *fallback
      procedure*: each threshold has a level fixed before any label is seen
      (the levels sum to ``delta``); a run of passing thresholds carries its
      level on to the next one, a failing one loses it but does not stop the
      later ones. Most of ``delta`` sits near the smallest accepted count at
      which a clean set could pass, the rest on a geometric grid of larger
      counts, so a few errors among the most confident samples cost little.
      The least confident passing threshold is returned. Raising ``delta``, or
      appending less confident calibration samples, never loses a certified
      threshold (docs/selective.md has the argument).
    * ``"sgr"``: selection with guaranteed risk (Geifman & El-Yaniv, 2017): a
      binary search over the ``G`` thresholds with a Clopper-Pearson (binomial
      tail) bound at level ``delta / ceil(log2(G + 1))`` per step (union bound
      over the search's steps).
    * ``"crc_joint"``: conformal risk control (Angelopoulos et al., 2024) of
      a different quantity, the share of **all** predictions that are
      accepted and wrong: the lowest threshold with ``(k + 1) / (n + 1) <=
      target_risk`` (``k`` accepted and wrong among ``n`` calibration
      samples). Averaged over calibration draws, that share on new data is at
      most ``target_risk``; it is not a bound on the selective risk (the
      error rate among the accepted) and not a high-probability bound.
      ``delta`` is not used.
    * ``"scan"``: a heuristic without guarantee: from confident to less
      confident thresholds, stop at the first whose corrected selective risk
      ``(k + 1) / (n_accepted + 1)`` exceeds ``target_risk``. Its mean test risk
      stayed under the target in the cases measured, but no theorem covers it.
      ``"crc"`` is its deprecated former name (``FutureWarning``).

    Where nothing can be certified (too few calibration samples, or an error
    rate above the target at every threshold), returns ``np.inf`` (accept
    nothing) with a ``UserWarning`` that says roughly how many calibration
    samples would be needed. ``target_risk=1`` accepts everything;
    ``target_risk=0`` can never be certified.

    Conventions: docs/conventions.md. Tied confidences are accepted or rejected
    together.

    Parameters
    ----------
    confidence : array-like of shape (n_samples,)
        Confidences of the calibration samples (e.g. a failure predictor's
        ``decision_function``), higher = more likely correct. NaN raises.
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    target_risk : float
        Largest acceptable error rate among accepted predictions, in [0, 1].
    delta : float, default=0.1
        Allowed probability that the guarantee fails, in (0, 1).
    method : {"ltt", "sgr", "crc_joint", "scan"}, default="ltt"
        Calibration procedure, see above.
    p_value : {"binomial", "hoeffding_bentkus"}, default="binomial"
        P-values of ``"ltt"``.

    Returns
    -------
    threshold : float
        Accept where ``confidence >= threshold``; ``inf`` accepts nothing.

    See Also
    --------
    certify_threshold : The same, with the certified bound and the coverage.
    certify_coverage : The dual question: the risk certified at a coverage.
    SelectiveClassifier : The meta-estimator built on it.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.selective import calibrate_threshold
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(size=5000)
    >>> y = (rng.uniform(size=5000) < 0.5 + 0.5 * conf).astype(int)
    >>> t = calibrate_threshold(conf, y, target_risk=0.1, delta=0.1)
    >>> accepted = conf >= t
    >>> bool(0.6 < t < 0.9), bool(1 - y[accepted].mean() <= 0.1)
    (True, True)
    """
    return certify_threshold(
        confidence,
        y_correct,
        target_risk=target_risk,
        delta=delta,
        method=method,
        p_value=p_value,
    ).threshold


def certify_coverage(
    confidence: Any,
    y_correct: Any,
    *,
    target_coverage: float,
    delta: float = 0.1,
) -> CertifiedThreshold:
    """The dual question: the selective risk certified at a target coverage.

    The threshold accepts the ``target_coverage`` share of most confident
    calibration samples (all of a block of tied confidences, so the coverage
    may be a little higher); the risk bound is the one-sided Clopper-Pearson
    upper bound, at level ``delta``, of the error rate among them. With
    probability at least ``1 - delta`` over the calibration draw (i.i.d. data,
    no shift), the selective risk of that threshold on new data is at most
    ``risk_bound``. Its coverage on new data is close to, not exactly,
    ``target_coverage``.

    Parameters
    ----------
    confidence : array-like of shape (n_samples,)
        Confidences of the calibration samples, higher = more likely correct.
    y_correct : array-like of shape (n_samples,)
        1 (or True) where the VLM's prediction is correct, 0 where it is wrong.
    target_coverage : float
        Share of predictions to accept, in (0, 1].
    delta : float, default=0.1
        Allowed probability that the bound fails, in (0, 1).

    Returns
    -------
    result : CertifiedThreshold
        ``(threshold, risk_bound, coverage, "coverage")``.

    Examples
    --------
    >>> from vilu_sklearn.selective import certify_coverage
    >>> y = [1] * 90 + [0] * 10
    >>> conf = list(range(100, 0, -1))  # the 10 errors are the least confident
    >>> res = certify_coverage(conf, y, target_coverage=0.5, delta=0.1)
    >>> res.threshold, res.coverage, round(res.risk_bound, 3)
    (51.0, 0.5, 0.045)
    """
    cov = _check_fraction(target_coverage, "target_coverage")
    d = _check_delta(delta)
    curve = _curve(confidence, y_correct)
    g = int(np.searchsorted(curve.n_accepted, math.ceil(cov * curve.n - 1e-9)))
    g = min(g, curve.thresholds.shape[0] - 1)
    bound = float(_risk_upper_bound(curve.n_errors[g], curve.n_accepted[g], d))
    return _found(curve, g, bound, "coverage")
