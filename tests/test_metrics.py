"""Tests of vilu_sklearn.metrics: metrics, bootstrap, report and scorers."""

from __future__ import annotations

import itertools
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.interpolate import interp1d
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from vilu_sklearn import caption_correctness
from vilu_sklearn.metrics import (
    BootstrapCI,
    FailureScorer,
    augrc,
    aupr_error,
    aupr_success,
    aurc,
    auroc,
    auroc_scorer,
    bootstrap_ci,
    coverage_at_risk,
    eaurc,
    failure_report,
    fpr_at_tpr,
    get_scorer,
    get_scorer_names,
    make_failure_scorer,
    neg_aurc_scorer,
    neg_fpr_at_95tpr_scorer,
    paired_bootstrap_ci,
    risk_at_coverage,
    risk_coverage_curve,
)

ALL_METRICS = [
    auroc,
    fpr_at_tpr,
    aupr_error,
    aupr_success,
    aurc,
    eaurc,
    augrc,
    risk_at_coverage,
    coverage_at_risk,
]
RANKING = [auroc, fpr_at_tpr, aupr_error, aupr_success]
SETTINGS = settings(max_examples=50, deadline=None)


def _fd_shifts_fpr(y, conf, tpr, sample_weight=None):
    fpr_c, tpr_c, _ = roc_curve(
        y, conf, sample_weight=sample_weight, drop_intermediate=False
    )
    return fpr_c[tpr_c >= tpr].min()


def _vilu_fpr(y, conf, tpr, sample_weight=None):
    # the ViLU reference code: roc_curve with its defaults, then interp1d
    fpr_c, tpr_c, _ = roc_curve(y, conf, sample_weight=sample_weight)
    return float(interp1d(tpr_c, fpr_c)(tpr))


def _geifman_aurc(y_sorted):
    """(1/n) sum_k errors(top k) / k for labels already sorted by confidence."""
    errors = np.cumsum(1 - np.asarray(y_sorted))
    return float(np.mean(errors / np.arange(1, len(errors) + 1)))


# --------------------------------------------------------------------------- #
# hand-computed cases
# --------------------------------------------------------------------------- #
def test_auroc_hand_computed():
    # success-failure pairs: (.9,.6) ok, (.9,.1) ok, (.4,.6) wrong, (.4,.1) ok
    assert auroc([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1]) == pytest.approx(3 / 4)
    # a tie between a success and a failure counts one half
    assert auroc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    # successes all below: 0
    assert auroc([1, 0, 0], [0.1, 0.5, 0.7]) == pytest.approx(0.0)


def test_fpr_methods_differ_on_flat_stretch():
    # ROC points (fpr, tpr), successes positive, P=3 N=2:
    # (0,0) (0,1/3) (0,2/3) (1/2,2/3) (1,2/3) (1,1): flat at tpr=2/3 from fpr 0 to 1
    y, conf = [1, 1, 0, 0, 1], [0.9, 0.8, 0.7, 0.6, 0.5]
    # np.interp / interp1d take the end of the flat stretch, FD-Shifts its start
    assert fpr_at_tpr(y, conf, tpr=2 / 3) == pytest.approx(1.0)
    assert fpr_at_tpr(y, conf, tpr=2 / 3, method="fd-shifts") == pytest.approx(0.0)
    assert fpr_at_tpr(y, conf, tpr=2 / 3) == pytest.approx(_vilu_fpr(y, conf, 2 / 3))
    # inside the vertical step from (1,2/3) to (1,1) they agree
    assert fpr_at_tpr(y, conf, tpr=0.8) == pytest.approx(1.0)
    assert fpr_at_tpr(y, conf, tpr=0.8, method="fd-shifts") == pytest.approx(1.0)


def test_fpr_methods_differ_on_tied_segment():
    # P=3, N=2; the tie at 0.5 gives the sloped segment (0,2/3) -> (1/2,1)
    y, conf = [1, 1, 0, 1, 0], [0.9, 0.8, 0.5, 0.5, 0.1]
    # interpolation at tpr .95: (0.95 - 2/3) / (1/3) = 0.85 of the way: 0.425
    assert fpr_at_tpr(y, conf) == pytest.approx(0.425)
    # FD-Shifts: first point with tpr >= .95 is (1/2, 1)
    assert fpr_at_tpr(y, conf, method="fd-shifts") == pytest.approx(0.5)
    assert fpr_at_tpr(y, conf) == pytest.approx(_vilu_fpr(y, conf, 0.95))
    assert fpr_at_tpr(y, conf, method="fd-shifts") == pytest.approx(
        _fd_shifts_fpr(y, conf, 0.95)
    )


def test_aupr_hand_computed():
    # failures positive ranked by -confidence: .1 (fail, prec 1), .3 (ok),
    # .8 (fail, prec 2/3): AP = (1 + 2/3) / 2
    assert aupr_error([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(5 / 6)
    # successes positive: .9 (prec 1), .8 fail, .3 (prec 2/3)
    assert aupr_success([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(5 / 6)
    # ascending: .2 ok, .5 fail (prec 1/2), .9 ok
    assert aupr_error([1, 1, 0], [0.9, 0.2, 0.5]) == pytest.approx(1 / 2)
    # descending: .9 ok (1), .5 fail, .2 ok (2/3)
    assert aupr_success([1, 1, 0], [0.9, 0.2, 0.5]) == pytest.approx(5 / 6)


def test_selective_hand_computed():
    y, conf = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]
    # risks of the top k: 0/1, 1/2, 1/3, 2/4 -> mean 1/3
    assert aurc(y, conf) == pytest.approx((0 + 1 / 2 + 1 / 3 + 2 / 4) / 4)
    # oracle order 1,1,0,0: 0, 0, 1/3, 1/2 -> 5/24; excess 1/3 - 5/24 = 1/8
    assert eaurc(y, conf) == pytest.approx(1 / 8)
    # accepted errors at k = 0..4: 0,0,1,1,2; trapezoid 0+.5+1+1.5 = 3; / n^2
    assert augrc(y, conf) == pytest.approx(3 / 16)
    # two tied samples: both orders equally likely -> (1/4 + 3/4) / 2
    assert aurc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)


def test_risk_and_coverage_hand_computed():
    y, conf = [1, 1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1]
    assert risk_at_coverage(y, conf, coverage=0.8) == pytest.approx(1 / 4)
    # 2.5 samples: the two successes and half of the failure at .7
    assert risk_at_coverage(y, conf, coverage=0.5) == pytest.approx(0.5 / 2.5)
    assert risk_at_coverage(y, conf, coverage=1.0) == pytest.approx(2 / 5)
    assert coverage_at_risk(y, conf, risk=0.25) == pytest.approx(4 / 5)
    assert coverage_at_risk(y, conf, risk=0.0) == pytest.approx(2 / 5)
    # (u - 2) / u <= 0.2 inside the failure at .7 -> u = 2.5
    assert coverage_at_risk(y, conf, risk=0.2) == pytest.approx(2.5 / 5)
    assert coverage_at_risk([0, 1], [0.9, 0.1], risk=0.1) == 0.0


def test_risk_coverage_curve_hand_computed():
    cov, risk, thr = risk_coverage_curve([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
    np.testing.assert_allclose(cov, [1 / 4, 3 / 4, 1])
    np.testing.assert_allclose(risk, [0, 1 / 3, 1 / 2])
    np.testing.assert_allclose(thr, [0.9, 0.8, 0.1])


def test_weighted_hand_computed():
    # weight 2 on the first success = repeating it
    assert auroc([1, 1, 0], [0.9, 0.2, 0.5], sample_weight=[2, 1, 1]) == (
        pytest.approx(2 / 3)
    )
    # zero weight removes the sample
    assert aurc([1, 0, 0], [0.9, 0.8, 0.1], sample_weight=[1, 1, 0]) == (
        pytest.approx(aurc([1, 0], [0.9, 0.8]))
    )


@pytest.mark.parametrize("seed", range(3))
def test_tie_model_equals_average_over_tie_breaks(seed):
    # AURC, AUGRC and risk@coverage with ties are the mean over every order of
    # the tied samples (enumerated over all 6! orders)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 6)
    conf = rng.integers(0, 3, 6).astype(float)
    aurcs, augrcs = [], []
    for perm in itertools.permutations(range(6)):
        p = np.array(perm)
        order = p[np.argsort(-conf[p], kind="stable")]
        errors = np.cumsum(1 - y[order])
        aurcs.append(np.mean(errors / np.arange(1, 7)))
        augrcs.append(np.trapezoid(np.r_[0, errors], dx=1) / 36)
    assert aurc(y, conf) == pytest.approx(np.mean(aurcs), abs=1e-12)
    assert augrc(y, conf) == pytest.approx(np.mean(augrcs), abs=1e-12)


# --------------------------------------------------------------------------- #
# agreement with scikit-learn and the reference formulas
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("seed", range(5))
def test_agreement_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 300
    y = rng.integers(0, 2, n)
    conf = np.round(y + rng.normal(size=n), 1)  # with ties
    w = rng.integers(0, 4, n).astype(float)
    for sw in (None, w):
        assert auroc(y, conf, sample_weight=sw) == pytest.approx(
            roc_auc_score(y, conf, sample_weight=sw), abs=1e-12
        )
        assert aupr_error(y, conf, sample_weight=sw) == pytest.approx(
            average_precision_score(1 - y, -conf, sample_weight=sw), abs=1e-12
        )
        assert aupr_success(y, conf, sample_weight=sw) == pytest.approx(
            average_precision_score(y, conf, sample_weight=sw), abs=1e-12
        )
        for tpr in (0.5, 0.9, 0.95):
            assert fpr_at_tpr(y, conf, tpr=tpr, sample_weight=sw) == pytest.approx(
                _vilu_fpr(y, conf, tpr, sw), abs=1e-12
            )
            got = fpr_at_tpr(y, conf, tpr=tpr, sample_weight=sw, method="fd-shifts")
            assert got == pytest.approx(_fd_shifts_fpr(y, conf, tpr, sw), abs=1e-12)


def test_augrc_auroc_identity():
    # Traub et al. 2024: AUGRC = (1 - AUROC) acc r + r^2 / 2
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    conf = np.round(y + rng.normal(size=500), 1)
    r = 1 - y.mean()
    expected = (1 - auroc(y, conf)) * (1 - r) * r + r**2 / 2
    assert augrc(y, conf) == pytest.approx(expected, abs=1e-12)


def test_oracle_large_n_limit():
    y = np.r_[np.ones(80_000), np.zeros(20_000)]
    r = 0.2
    assert aurc(y, y) == pytest.approx(r + (1 - r) * np.log(1 - r), abs=1e-4)


# --------------------------------------------------------------------------- #
# input validation
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("metric", ALL_METRICS)
def test_2d_confidence_rejected(metric):
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    with pytest.raises(ValueError, match=r"confidence.*2-D.*\(2, 2\).*\[:, 1\]"):
        metric([1, 0], proba)


@pytest.mark.parametrize("metric", RANKING)
@pytest.mark.parametrize("y", [[1, 1, 1], [0, 0, 0]])
def test_single_class_raises(metric, y):
    with pytest.raises(ValueError, match="only one class"):
        metric(y, [0.1, 0.5, 0.9])


def test_single_class_is_fine_for_selective_metrics():
    assert aurc([1, 1], [0.1, 0.2]) == 0.0
    assert eaurc([0, 0], [0.1, 0.2]) == pytest.approx(0.0)
    assert risk_at_coverage([0, 0], [0.1, 0.2]) == 1.0


@pytest.mark.parametrize(
    "y, conf, match",
    [
        ([1, 0, 1], [0.1, 0.2], r"y_correct has 3 labels.*confidence has 2"),
        ([1, 2], [0.1, 0.2], "y_correct must be binary"),
        (["a", "b"], [0.1, 0.2], "y_correct must be binary"),
        ([[1, 0], [0, 1]], [0.1, 0.2], r"y_correct must be a 1-D.*\(2, 2\)"),
        ([1, 0], [0.1, np.nan], "confidence contains NaN"),
        ([1, 0], [0.1, np.inf], "confidence contains NaN or infinity"),
        ([1, 0], ["a", "b"], "confidence must hold real numbers"),
        ([], [], "confidence is empty"),
        ([1, 0], np.zeros((2, 1, 1)), "3-D array"),
    ],
)
def test_invalid_inputs(y, conf, match):
    with pytest.raises(ValueError, match=match):
        aurc(y, conf)


def test_invalid_weights_and_params():
    with pytest.raises(ValueError, match="sample_weight must be a 1-D"):
        auroc([1, 0], [0.1, 0.2], sample_weight=[1, 1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        auroc([1, 0], [0.1, 0.2], sample_weight=[1, -1])
    with pytest.raises(ValueError, match="sums to 0"):
        auroc([1, 0], [0.1, 0.2], sample_weight=[0, 0])
    with pytest.raises(ValueError, match="tpr must be a number in"):
        fpr_at_tpr([1, 0], [0.1, 0.2], tpr=1.5)
    with pytest.raises(ValueError, match="method must be one of"):
        fpr_at_tpr([1, 0], [0.1, 0.2], method="oops")
    with pytest.raises(ValueError, match="coverage must be"):
        risk_at_coverage([1, 0], [0.1, 0.2], coverage=0)


def test_bool_and_float16_inputs():
    y = np.array([True, False, True])
    conf = np.array([0.9, 0.1, 0.5], dtype=np.float16)
    assert auroc(y, conf) == 1.0


# --------------------------------------------------------------------------- #
# hypothesis properties
# --------------------------------------------------------------------------- #
@st.composite
def labelled_scores(draw, min_size=2, max_size=30, both=True):
    n = draw(st.integers(min_size, max_size))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    # a coarse grid of confidences, so that ties are frequent
    k = np.array(draw(st.lists(st.integers(0, 8), min_size=n, max_size=n)))
    if both:
        assume(0 < y.sum() < n)
    return y, k / 4.0


TRANSFORMS = [np.exp, np.arctan, lambda x: x**3 + 2.0, lambda x: 10.0 * x - 3.0]


@SETTINGS
@given(labelled_scores(), st.sampled_from(TRANSFORMS))
def test_invariant_under_increasing_transforms(data, f):
    y, conf = data
    for metric in ALL_METRICS:
        assert metric(y, f(conf)) == pytest.approx(metric(y, conf), abs=1e-12)


@SETTINGS
@given(labelled_scores())
def test_bounds(data):
    y, conf = data
    for metric in ALL_METRICS:
        assert -1e-12 <= metric(y, conf) <= 1 + 1e-12
    assert augrc(y, conf) <= 0.5 + 1e-12
    assert eaurc(y, conf) >= -1e-12


@SETTINGS
@given(labelled_scores())
def test_perfect_and_reversed_scorers(data):
    y, k = data
    perfect = 10.0 * y + k  # every success above every failure, ties kept
    assert auroc(y, perfect) == pytest.approx(1.0)
    assert fpr_at_tpr(y, perfect) == pytest.approx(0.0)
    assert fpr_at_tpr(y, perfect, method="fd-shifts") == pytest.approx(0.0)
    assert aupr_error(y, perfect) == pytest.approx(1.0)
    assert aupr_success(y, perfect) == pytest.approx(1.0)
    assert aurc(y, perfect) == pytest.approx(aurc(y, y.astype(float)), abs=1e-12)
    assert eaurc(y, perfect) == pytest.approx(0.0, abs=1e-12)
    assert auroc(y, -perfect) == pytest.approx(0.0)
    assert fpr_at_tpr(y, -perfect) == pytest.approx(1.0)


@SETTINGS
@given(labelled_scores(both=False))
def test_oracle_is_the_discrete_minimum(data):
    y, conf = data
    oracle = _geifman_aurc(np.sort(y)[::-1])  # successes first
    assert aurc(y, y.astype(float)) == pytest.approx(oracle, abs=1e-12)
    assert aurc(y, conf) >= oracle - 1e-12
    assert eaurc(y, conf) == pytest.approx(aurc(y, conf) - oracle, abs=1e-12)


@SETTINGS
@given(labelled_scores(), st.randoms(use_true_random=False))
def test_permutation_invariance(data, rnd):
    y, conf = data
    perm = np.array(rnd.sample(range(len(y)), len(y)))
    for metric in ALL_METRICS:
        assert metric(y[perm], conf[perm]) == pytest.approx(metric(y, conf), abs=1e-12)


@SETTINGS
@given(labelled_scores(), st.data())
def test_integer_weights_equal_repetition(data, draw):
    y, conf = data
    w = np.array(
        draw.draw(st.lists(st.integers(0, 3), min_size=len(y), max_size=len(y)))
    )
    assume(0 < w[y == 1].sum() and 0 < w[y == 0].sum())
    rep = np.repeat(np.arange(len(y)), w)
    for metric in ALL_METRICS:
        assert metric(y, conf, sample_weight=w) == pytest.approx(
            metric(y[rep], conf[rep]), abs=1e-12
        )


# --------------------------------------------------------------------------- #
# bootstrap
# --------------------------------------------------------------------------- #
def _synthetic(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, y + rng.normal(size=n)


def test_bootstrap_reproducible_and_seeded():
    y, conf = _synthetic(300)
    a = bootstrap_ci("auroc", y, conf, n_resamples=200, random_state=1)
    b = bootstrap_ci(auroc, y, conf, n_resamples=200, random_state=1)
    c = bootstrap_ci(auroc, y, conf, n_resamples=200, random_state=2)
    assert isinstance(a, BootstrapCI)
    assert a == b
    assert a.estimate == c.estimate and (a.low, a.high) != (c.low, c.high)


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_bootstrap_contains_estimate(metric):
    y, conf = _synthetic(400)
    res = bootstrap_ci(metric, y, conf, n_resamples=200)
    assert res.estimate == pytest.approx(metric(y, conf))
    assert res.low <= res.estimate <= res.high
    assert res.n_skipped == 0


def test_bootstrap_narrows_with_n():
    small = bootstrap_ci("aurc", *_synthetic(200), n_resamples=300)
    large = bootstrap_ci("aurc", *_synthetic(5000), n_resamples=300)
    assert large.high - large.low < (small.high - small.low) / 2


def test_bootstrap_vectorised_equals_loop():
    # a foreign callable goes through the per-resample loop, on the same draws
    y, conf = _synthetic(150)
    fast = bootstrap_ci(auroc, y, conf, n_resamples=100, random_state=3)
    slow = bootstrap_ci(roc_auc_score, y, conf, n_resamples=100, random_state=3)
    assert fast.low == pytest.approx(slow.low, abs=1e-12)
    assert fast.high == pytest.approx(slow.high, abs=1e-12)


def test_bootstrap_skips_single_class_resamples():
    y = np.r_[np.ones(9), 0]
    conf = np.linspace(0, 1, 10)
    res = bootstrap_ci("auroc", y, conf, n_resamples=200)
    # P(no failure in a resample) = 0.9 ** 10 ~ 0.35
    assert 30 < res.n_skipped < 120
    assert bootstrap_ci("aurc", y, conf, n_resamples=200).n_skipped == 0
    with warnings.catch_warnings():  # sklearn warns and returns NaN on one class
        warnings.simplefilter("ignore")
        slow = bootstrap_ci(roc_auc_score, y, conf, n_resamples=200)
    assert slow.n_skipped == res.n_skipped


def test_bootstrap_kwargs_weights_and_errors():
    y, conf = _synthetic(200)
    res = bootstrap_ci(fpr_at_tpr, y, conf, n_resamples=50, tpr=0.9)
    assert res.estimate == fpr_at_tpr(y, conf, tpr=0.9)
    w = np.full(200, 2.0)
    assert bootstrap_ci(auroc, y, conf, sample_weight=w, n_resamples=50) == (
        bootstrap_ci(auroc, y, conf, n_resamples=50)
    )
    with pytest.raises(ValueError, match="Unknown metric"):
        bootstrap_ci("nope", y, conf)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci("auroc", y, conf, n_resamples=0)
    with pytest.raises(ValueError, match="confidence_level"):
        bootstrap_ci("auroc", y, conf, confidence_level=1.0)


# --------------------------------------------------------------------------- #
# failure_report
# --------------------------------------------------------------------------- #
def test_failure_report_matches_functions():
    y, conf = _synthetic(300)
    report = failure_report(y, conf, tpr=0.9, coverage=0.5, risk=0.1)
    assert report["auroc"] == auroc(y, conf)
    assert report["fpr_at_tpr"] == fpr_at_tpr(y, conf, tpr=0.9)
    assert report["aurc"] == aurc(y, conf)
    assert report["eaurc"] == eaurc(y, conf)
    assert report["augrc"] == augrc(y, conf)
    assert report["aupr_error"] == aupr_error(y, conf)
    assert report["risk_at_coverage"] == risk_at_coverage(y, conf, coverage=0.5)
    assert report["coverage_at_risk"] == coverage_at_risk(y, conf, risk=0.1)
    assert report["accuracy"] == pytest.approx(y.mean())
    assert report["n_samples"] == 300


def test_failure_report_with_ci():
    y, conf = _synthetic(300)
    report = failure_report(y, conf, n_resamples=100, random_state=0)
    single = bootstrap_ci("auroc", y, conf, n_resamples=100, random_state=0)
    assert report["auroc_ci_low"] == pytest.approx(single.low)
    assert report["auroc_ci_high"] == pytest.approx(single.high)
    for key in ("aurc", "eaurc", "augrc", "fpr_at_tpr"):
        assert report[f"{key}_ci_low"] <= report[key] <= report[f"{key}_ci_high"]


def test_failure_report_single_class_gives_nan():
    with pytest.warns(UserWarning, match="only one class"):
        report = failure_report([1, 1, 1], [0.1, 0.2, 0.3])
    assert np.isnan(report["auroc"]) and np.isnan(report["fpr_at_tpr"])
    assert report["aurc"] == 0.0


# --------------------------------------------------------------------------- #
# scorers
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def clf_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + 0.8 * rng.normal(size=200) > 0).astype(int)
    return X, y


def test_scorer_names_and_objects(clf_data):
    X, y = clf_data
    clf = LogisticRegression().fit(X, y)
    conf = clf.decision_function(X)
    assert "auroc" in get_scorer_names() and "neg_aurc" in get_scorer_names()
    assert get_scorer("auroc")(clf, X, y) == pytest.approx(roc_auc_score(y, conf))
    assert neg_aurc_scorer(clf, X, y) == pytest.approx(-aurc(y, conf))
    assert neg_fpr_at_95tpr_scorer(clf, X, y) == pytest.approx(-fpr_at_tpr(y, conf))
    for name in get_scorer_names():
        value = get_scorer(name)(clf, X, y)
        assert (value <= 0) if name.startswith("neg_") else (value >= 0)
    scorer = make_failure_scorer(risk_at_coverage, greater_is_better=False)
    assert scorer(clf, X, y) == pytest.approx(-risk_at_coverage(y, conf))
    assert get_scorer(scorer) is scorer
    with pytest.raises(ValueError, match="not a valid failure scorer"):
        get_scorer("roc_auc_typo")


def test_scorers_pickle(clf_data):
    X, y = clf_data
    clf = LogisticRegression().fit(X, y)
    for name in get_scorer_names():
        scorer = get_scorer(name)
        restored = pickle.loads(pickle.dumps(scorer))
        assert restored(clf, X, y) == scorer(clf, X, y)


def test_scorer_with_predict_proba_only(clf_data):
    X, y = clf_data
    nb = GaussianNB().fit(X, y)
    expected = roc_auc_score(y, nb.predict_proba(X)[:, 1])
    assert auroc_scorer(nb, X, y) == pytest.approx(expected)


# n_jobs=2 also sends the scorers to worker processes; starting them (each
# imports the package and torch) is what makes that variant slow
@pytest.mark.parametrize("n_jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_grid_search_by_name_and_object(clf_data, n_jobs):
    X, y = clf_data
    search = GridSearchCV(
        LogisticRegression(),
        {"C": [0.01, 1.0]},
        scoring={"auroc": get_scorer("auroc"), "fpr": neg_fpr_at_95tpr_scorer},
        refit="auroc",
        cv=3,
        n_jobs=n_jobs,
    )
    search.fit(X, y)
    assert np.all(search.cv_results_["mean_test_auroc"] > 0.5)
    assert np.all(search.cv_results_["mean_test_fpr"] <= 0)
    single = GridSearchCV(
        LogisticRegression(), {"C": [1.0]}, scoring=auroc_scorer, cv=3
    ).fit(X, y)
    assert single.best_score_ == pytest.approx(search.cv_results_["mean_test_auroc"][1])


def test_cross_validate_with_pipeline(clf_data):
    X, y = clf_data
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    cv = KFold(3, shuffle=True, random_state=0)
    res = cross_validate(
        pipe,
        X,
        y,
        cv=cv,
        scoring={n: get_scorer(n) for n in ("auroc", "neg_aurc", "neg_eaurc")},
    )
    for i, (train, test) in enumerate(cv.split(X)):
        conf = pipe.fit(X[train], y[train]).decision_function(X[test])
        assert res["test_auroc"][i] == pytest.approx(roc_auc_score(y[test], conf))
        assert res["test_neg_aurc"][i] == pytest.approx(-aurc(y[test], conf))


class FakeCaptionPredictor(BaseEstimator):
    """Caption-mode failure predictor: confidence = cosine of the own pair."""

    mode = "caption"

    def __init__(self, caption_group_size=4, normalize=True):
        self.caption_group_size = caption_group_size
        self.normalize = normalize

    def fit(self, X, X_txt):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def decision_function(self, X, X_txt):
        X, X_txt = np.asarray(X, float), np.asarray(X_txt, float)
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        X_txt = X_txt / np.linalg.norm(X_txt, axis=1, keepdims=True)
        return np.sum(X * X_txt, axis=1)


@pytest.fixture(scope="module")
def caption_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 5))
    X_txt = X + 1.2 * rng.normal(size=(48, 5))
    return X, X_txt


def test_caption_mode_scorer(caption_data):
    X, X_txt = caption_data
    est = FakeCaptionPredictor().fit(X, X_txt)
    y_correct = caption_correctness(X, X_txt, group_size=4)
    assert 0 < y_correct.sum() < len(y_correct)
    conf = est.decision_function(X, X_txt)
    assert auroc_scorer(est, X, X_txt) == pytest.approx(auroc(y_correct, conf))
    assert neg_aurc_scorer(est, X, X_txt) == pytest.approx(-aurc(y_correct, conf))
    # the group size of the estimator is used
    y8 = caption_correctness(X, X_txt, group_size=8)
    est8 = FakeCaptionPredictor(caption_group_size=8).fit(X, X_txt)
    assert auroc_scorer(est8, X, X_txt) == pytest.approx(auroc(y8, conf))


def test_caption_mode_pipeline_and_cross_validate(caption_data):
    X, X_txt = caption_data
    pipe = Pipeline([("id", FunctionTransformer()), ("m", FakeCaptionPredictor())])
    pipe.fit(X, X_txt)
    y_correct = caption_correctness(X, X_txt, group_size=4)
    conf = pipe[-1].decision_function(X, X_txt)
    assert get_scorer("auroc")(pipe, X, X_txt) == pytest.approx(auroc(y_correct, conf))
    res = cross_validate(
        FakeCaptionPredictor(), X, X_txt, cv=KFold(2), scoring=neg_aurc_scorer
    )
    assert res["test_score"].shape == (2,)
    assert np.all(res["test_score"] <= 0)


def test_caption_mode_needs_caption_matrix(caption_data):
    X, X_txt = caption_data
    est = FakeCaptionPredictor().fit(X, X_txt)
    with pytest.raises(ValueError, match="caption embeddings X_txt"):
        auroc_scorer(est, X, np.zeros(len(X)))


def test_failure_scorer_repr_and_sign():
    assert repr(FailureScorer(auroc)) == "FailureScorer(auroc)"
    with pytest.raises(ValueError, match="sign"):
        FailureScorer(auroc, sign=2)


# --------------------------------------------------------------------------- #
# real data
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_msp_auroc_on_cifar(cifar):
    img = cifar["X_img_test"].astype(np.float64)
    txt = cifar["X_txt"].astype(np.float64)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    logits = float(cifar["logit_scale"]) * img @ txt.T
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    msp = proba.max(axis=1)
    y_correct = (proba.argmax(axis=1) == cifar["y_test"]).astype(int)
    assert 0 < y_correct.mean() < 1
    assert auroc(y_correct, msp) == pytest.approx(
        roc_auc_score(y_correct, msp), abs=1e-12
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = failure_report(y_correct, msp)
    assert 0.5 < report["auroc"] < 1
    assert report["eaurc"] > 0


# ------------------------------------------------------- paired bootstrap
def _two_scores(n=800, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    noise = rng.normal(size=n)
    return y, y + noise, y + 3 * noise


def test_paired_bootstrap_identical_scores_is_exactly_zero():
    y, a, _ = _two_scores()
    for metric in ("auroc", "fpr_at_tpr", "aurc"):
        res = paired_bootstrap_ci(metric, y, a, a.copy(), n_resamples=100)
        assert (res.estimate, res.low, res.high) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_dominating_score_excludes_zero():
    y, better, worse = _two_scores()
    d_auc = paired_bootstrap_ci("auroc", y, better, worse, n_resamples=300)
    d_fpr = paired_bootstrap_ci(fpr_at_tpr, y, better, worse, n_resamples=300)
    assert 0 < d_auc.low <= d_auc.estimate <= d_auc.high
    assert d_fpr.low <= d_fpr.estimate <= d_fpr.high < 0
    assert d_auc.estimate == pytest.approx(auroc(y, better) - auroc(y, worse))
    swapped = paired_bootstrap_ci("auroc", y, worse, better, n_resamples=300)
    assert swapped.low == pytest.approx(-d_auc.high)
    assert swapped.high == pytest.approx(-d_auc.low)


def test_paired_bootstrap_is_narrower_than_separate_intervals():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    a = y + rng.normal(size=600)
    b = a + 0.1 * rng.normal(size=600)  # nearly the same score
    paired = paired_bootstrap_ci("auroc", y, a, b, n_resamples=300)
    alone = bootstrap_ci("auroc", y, a, n_resamples=300)
    assert paired.high - paired.low < 0.5 * (alone.high - alone.low)


def test_paired_bootstrap_callable_matches_vectorised_path():
    y, a, b = _two_scores(300, 2)

    def my_auroc(y_true, conf, *, sample_weight=None):
        return auroc(y_true, conf, sample_weight=sample_weight)

    fast = paired_bootstrap_ci("auroc", y, a, b, n_resamples=50, random_state=3)
    slow = paired_bootstrap_ci(my_auroc, y, a, b, n_resamples=50, random_state=3)
    assert fast.low == pytest.approx(slow.low)
    assert fast.high == pytest.approx(slow.high)


def test_paired_bootstrap_checks_inputs():
    y, a, _ = _two_scores(50)
    with pytest.raises(ValueError, match="confidence has 50 values"):
        paired_bootstrap_ci("auroc", y[:40], a[:40], a)
    with pytest.raises(ValueError, match="NaN"):
        paired_bootstrap_ci("auroc", y, a, np.r_[a[:-1], np.nan])
