"""vilu_sklearn.selective: certified thresholds, SelectiveClassifier, PPI."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from _helpers import FAST_VILU, STRING_LABELS, MeaningfulLabels
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from vilu_sklearn import ViLUClassifier, correctness
from vilu_sklearn.baselines import MSP
from vilu_sklearn.datasets import make_caption_embeddings, make_vlm_embeddings
from vilu_sklearn.selective import (
    SelectiveClassifier,
    calibrate_threshold,
    certify_coverage,
    certify_threshold,
    estimate_accuracy,
    estimate_selective_risk,
)

METHODS = ["ltt", "sgr", "scan", "crc_joint"]
# methods whose target is the selective risk (crc_joint controls another share)
SELECTIVE = ["ltt", "sgr", "scan"]


def _population(n, seed=0):
    """Scores with P(correct | s) = 0.4 + 0.6 s, s uniform."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(size=n)
    return s, (rng.uniform(size=n) < 0.4 + 0.6 * s).astype(np.int64)


def _true_risk(t):
    """Selective risk of s >= t for the population of _population."""
    t = min(max(t, 0.0), 1.0 - 1e-12)
    return 1 - (0.4 + 0.3 * (1 + t))


# --------------------------------------------------------------- thresholds
@pytest.mark.parametrize("method", SELECTIVE)
def test_threshold_meets_target_on_new_data(method):
    s, y = _population(4000)
    t = calibrate_threshold(s, y, target_risk=0.15, method=method)
    assert 0.5 < t < 0.95
    assert _true_risk(t) <= 0.15 + (0.01 if method == "scan" else 0.0)


def test_ltt_validity_over_repeated_calibration():
    # the guarantee is marginal over calibration draws: count the failures
    fails = 0
    reps = 200
    for seed in range(reps):
        s, y = _population(500, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = calibrate_threshold(s, y, target_risk=0.15, delta=0.2)
        fails += _true_risk(t) > 0.15
    # delta 0.2; binomial(200, 0.2) exceeds 60 with probability < 1e-3
    assert fails <= 60


def test_ltt_does_not_certify_past_a_block_of_errors():
    # confident block clean, then a block of errors, then correct ones: every
    # threshold past the bad block has an empirical risk above the target
    y = np.r_[np.ones(300), np.zeros(60), np.ones(200)].astype(int)
    conf = np.linspace(1, 0, y.size)
    res = certify_threshold(conf, y, target_risk=0.1, delta=0.1)
    assert 250 / y.size <= res.coverage <= 330 / y.size


def test_hoeffding_bentkus_is_more_conservative():
    s, y = _population(3000, 1)
    t_bin = calibrate_threshold(s, y, target_risk=0.15)
    t_hb = calibrate_threshold(s, y, target_risk=0.15, p_value="hoeffding_bentkus")
    assert t_hb >= t_bin


def test_sgr_bound_is_the_certified_risk():
    s, y = _population(3000, 2)
    res = certify_threshold(s, y, target_risk=0.15, method="sgr")
    accepted = s >= res.threshold
    assert res.risk_bound <= 0.15
    assert res.risk_bound >= 1 - y[accepted].mean()
    assert res.coverage == pytest.approx(accepted.mean())


@pytest.mark.parametrize("method", METHODS)
def test_all_correct(method):
    conf = np.linspace(0, 1, 500)
    res = certify_threshold(conf, np.ones(500, int), target_risk=0.05, method=method)
    assert res.threshold == conf.min() and res.coverage == 1.0


@pytest.mark.parametrize("method", SELECTIVE)
def test_all_wrong_gives_inf_with_a_warning(method):
    conf = np.linspace(0, 1, 500)
    with pytest.warns(UserWarning, match="accept nothing"):
        res = certify_threshold(
            conf, np.zeros(500, int), target_risk=0.2, method=method
        )
    assert res.threshold == np.inf and res.coverage == 0.0 and res.risk_bound == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_ties_are_accepted_together(method):
    # three confidence levels; the top two are clean
    conf = np.repeat([0.9, 0.5, 0.1], 400)
    y = np.r_[np.ones(800), np.r_[np.ones(100), np.zeros(300)]].astype(int)
    res = certify_threshold(conf, y, target_risk=0.05, method=method)
    assert res.threshold == 0.5
    assert res.coverage == pytest.approx(2 / 3)
    shuffled = np.random.default_rng(0).permutation(conf.size)
    again = certify_threshold(
        conf[shuffled], y[shuffled], target_risk=0.05, method=method
    )
    assert again == res


@pytest.mark.parametrize("method", METHODS)
def test_single_calibration_sample(method):
    with pytest.warns(UserWarning, match=r"calibration samples would be needed"):
        t = calibrate_threshold([0.7], [1], target_risk=0.1, method=method)
    assert t == np.inf


@pytest.mark.parametrize("method, need", [("ltt", 40), ("sgr", 22)])
def test_needed_size_is_about_right(method, need):
    # LTT: 4 / alpha = 40 clean samples (see test_ltt_on_a_small_calibration_set);
    # SGR with 1 threshold: log(0.1) / log(0.9) = 21.9 -> 22
    with pytest.warns(UserWarning) as rec:
        calibrate_threshold(
            np.ones(10), np.ones(10, int), target_risk=0.1, method=method
        )
    assert f"roughly {need} calibration samples" in str(rec[0].message)
    t = calibrate_threshold(
        np.ones(need), np.ones(need, int), target_risk=0.1, method=method
    )
    assert np.isfinite(t)


@pytest.mark.parametrize("method", METHODS)
def test_target_risk_zero_and_one(method):
    s, y = _population(300)
    with pytest.warns(UserWarning, match="exactly 0 cannot be certified"):
        assert calibrate_threshold(s, y, target_risk=0.0, method=method) == np.inf
    res = certify_threshold(s, y, target_risk=1.0, method=method)
    assert res.threshold == s.min() and res.coverage == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target_risk=1.5), "target_risk must be a number in"),
        (dict(target_risk=0.1, delta=1.0), "delta must be a number in"),
        (dict(target_risk=0.1, method="bonferroni"), "method must be one of"),
        (dict(target_risk=0.1, p_value="wsr"), "p_value must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        calibrate_threshold([0.1, 0.2], [0, 1], **kwargs)


def test_nan_and_bad_labels_raise_clear_errors():
    with pytest.raises(ValueError, match="confidence contains NaN"):
        calibrate_threshold([0.1, np.nan], [0, 1], target_risk=0.1)
    with pytest.raises(ValueError, match="y_correct must be binary"):
        calibrate_threshold([0.1, 0.2], [0, 2], target_risk=0.1)
    with pytest.raises(ValueError, match="1-D array"):
        calibrate_threshold(np.ones((3, 2)), [0, 1, 1], target_risk=0.1)


@settings(max_examples=40, deadline=None)
@given(
    y=st.lists(st.integers(0, 1), min_size=1, max_size=60),
    alpha=st.floats(0.01, 0.99),
    method=st.sampled_from(METHODS),
)
def test_threshold_is_a_calibration_value_or_inf(y, alpha, method):
    y = np.array(y)
    conf = np.random.default_rng(len(y)).integers(0, 5, size=len(y)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = certify_threshold(conf, y, target_risk=alpha, method=method)
    assert res.threshold == np.inf or res.threshold in conf
    if np.isfinite(res.threshold):
        assert res.coverage == pytest.approx(np.mean(conf >= res.threshold))
        accepted = conf >= res.threshold
        if method == "crc_joint":  # the share accepted and wrong, corrected
            assert (np.sum(accepted & (y == 0)) + 1) / (len(y) + 1) <= alpha + 1e-12
        else:  # the empirical risk of a certified set never exceeds the target
            assert 1 - y[accepted].mean() <= alpha + 1e-12


# --------------------------------------------------------- dual question
def test_certify_coverage_bound_holds_and_tightens_with_n():
    small = certify_coverage(*_population(500, 3), target_coverage=0.5)
    large = certify_coverage(*_population(20000, 3), target_coverage=0.5)
    assert large.risk_bound < small.risk_bound
    assert large.risk_bound >= _true_risk(large.threshold)
    assert large.coverage == pytest.approx(0.5, abs=1e-3)


def test_certify_coverage_rejects_bad_coverage():
    with pytest.raises(ValueError, match="target_coverage must be a number in"):
        certify_coverage([0.1, 0.2], [0, 1], target_coverage=0.0)


# ------------------------------------------------------------------- PPI
def test_ppi_interval_covers_and_beats_labelled_only():
    hits, narrower = 0, 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        p = rng.uniform(0.2, 1.0, size=5300)
        y = (rng.uniform(size=p.size) < p).astype(int)
        r = estimate_accuracy(p[300:], p[:300], y[:300], confidence_level=0.9)
        hits += r.low <= 0.6 <= r.high
        narrower += (r.high - r.low) < (r.labelled_only_high - r.labelled_only_low)
    assert hits >= 80  # 90 % nominal; binomial(100, 0.9) < 80 has prob ~6e-4
    assert narrower >= 90


def test_ppi_with_useless_predictions_falls_back_to_labels():
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=400) < 0.7).astype(int)
    r = estimate_accuracy(rng.uniform(size=5000), rng.uniform(size=400), y)
    width = r.high - r.low
    assert width <= 1.15 * (r.labelled_only_high - r.labelled_only_low)
    assert r.weight < 0.5


def test_ppi_errors():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        estimate_accuracy([0.5, 2.0], [0.5, 0.5], [1, 0])
    with pytest.raises(ValueError, match="at least 2 labelled"):
        estimate_accuracy([0.5, 0.6], [0.5], [1])
    with pytest.raises(ValueError, match="NaN"):
        estimate_accuracy([0.5, np.nan], [0.5, 0.4], [1, 0])
    with pytest.raises(ValueError, match="labels, but confidence has"):
        estimate_accuracy([0.5, 0.4], [0.5, 0.4], [1, 0, 1])


def test_selective_risk_estimate():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.0, 1.0, size=20600)
    y = (rng.uniform(size=p.size) < p).astype(int)
    r = estimate_selective_risk(p[600:], p[:600], y[:600], threshold=0.5)
    assert r.low <= 0.25 <= r.high  # E[1 - p | p >= 0.5] = 0.25
    with pytest.raises(ValueError, match="No unlabelled sample"):
        estimate_selective_risk(p[600:], p[:600], y[:600], threshold=2.0)


# ----------------------------------------------------- SelectiveClassifier
@pytest.fixture(scope="module")
def data():
    d = make_vlm_embeddings(3000, 8, 32, accuracy=0.7, random_state=0)
    return d, correctness(d.X_img, d.X_txt, d.labels)


_FAST = dict(FAST_VILU, max_epochs=5)


def test_both_call_forms_agree(data):
    d, y = data
    three = SelectiveClassifier(
        MSP(logit_scale=d.logit_scale), target_risk=0.6, random_state=0
    ).fit(d.X_img, d.X_txt, y)
    two = SelectiveClassifier(
        MSP(logit_scale=d.logit_scale, text_embeddings=d.X_txt),
        target_risk=0.6,
        random_state=0,
    ).fit(d.X_img, y)
    assert three.threshold_ == two.threshold_
    assert np.isfinite(three.threshold_)
    np.testing.assert_array_equal(three.predict(d.X_img, d.X_txt), two.predict(d.X_img))
    assert three.n_calibration_ == 900
    assert set(np.unique(three.predict(d.X_img, d.X_txt))) <= {0, 1}


def test_prefit_and_dual_question(data):
    d, y = data
    msp = MSP(logit_scale=d.logit_scale).fit(d.X_img, d.X_txt, y)
    clf = SelectiveClassifier(msp, cv="prefit", target_risk=None, target_coverage=0.5)
    clf.fit(d.X_img, d.X_txt, y)
    assert clf.estimator_ is msp and clf.n_calibration_ == len(y)
    assert clf.coverage_ == pytest.approx(0.5, abs=0.01)
    conf = msp.decision_function(d.X_img, d.X_txt)
    accepted_risk = 1 - y[conf >= clf.threshold_].mean()
    assert accepted_risk <= clf.risk_bound_ <= 1.0


def test_targets_must_be_exclusive(data):
    d, y = data
    clf = SelectiveClassifier(MSP(), target_coverage=0.5)
    with pytest.raises(ValueError, match="exactly one of target_risk"):
        clf.fit(d.X_img, d.X_txt, y)


def test_prefit_needs_a_fitted_estimator(data):
    d, y = data
    with pytest.raises(Exception, match="not fitted"):
        SelectiveClassifier(MSP(), cv="prefit").fit(d.X_img, d.X_txt, y)


def test_nothing_certified_warns_and_abstains(data):
    d, y = data
    clf = SelectiveClassifier(MSP(), target_risk=0.001, random_state=0)
    with pytest.warns(UserWarning, match="accept nothing"):
        clf.fit(d.X_img, d.X_txt, y)
    assert clf.threshold_ == np.inf and clf.coverage_ == 0.0
    assert not clf.predict(d.X_img, d.X_txt).any()


def test_caption_mode():
    cap = make_caption_embeddings(600, 32, random_state=0)
    X_img, X_cap = cap.X_img, cap.X_txt
    vilu = ViLUClassifier(mode="caption", caption_group_size=50, **_FAST)
    clf = SelectiveClassifier(vilu, target_risk=0.9, random_state=0)
    clf.fit(X_img, X_cap)
    assert clf.n_calibration_ == 180
    pred = clf.predict(X_img[:100], X_cap[:100])
    assert pred.shape == (100,) and set(np.unique(pred)) <= {0, 1}
    with pytest.raises(ValueError, match="caption mode"):
        clf.fit(X_img, X_cap, np.ones(600))


def test_clone_keeps_parameters():
    clf = SelectiveClassifier(MSP(), target_risk=0.2, delta=0.05, method="sgr")
    params = clone(clf).get_params()
    assert params["target_risk"] == 0.2 and params["method"] == "sgr"
    assert math.isclose(params["delta"], 0.05)


class _SelectiveClassifier(MeaningfulLabels, SelectiveClassifier):
    """SelectiveClassifier reading the checks' two-valued labels as correctness."""


@parametrize_with_checks(
    [
        _SelectiveClassifier(
            ViLUClassifier(
                use_attention=False,
                use_predicted_text=False,
                posterior_head=False,
                **_FAST,
            ),
            target_risk=0.3,
            delta=0.5,
            random_state=0,
        )
    ],
    expected_failed_checks=lambda est: {"check_classifiers_classes": STRING_LABELS},
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)


def test_scan_on_a_small_calibration_set_starts_where_zero_errors_can_pass():
    # 35 samples: too few for the half-rate start (38 at alpha = 0.1: 1 error
    # in 38 passes); the scan's (k + 1) / (n + 1) allows 2 errors in 32
    y = np.r_[np.ones(30), np.zeros(5)].astype(int)
    conf = np.linspace(1, 0, 35)
    res = certify_threshold(conf, y, target_risk=0.1, delta=0.1, method="scan")
    assert res.coverage == 32 / 35


def test_ltt_on_a_small_calibration_set():
    # LTT's first usable count at alpha = delta = 0.1 is 40 (2 / alpha samples
    # are too few for a clean set to pass at level 0.05, 4 / alpha are not)
    y = np.r_[np.ones(45), np.zeros(5)].astype(int)
    conf = np.linspace(1, 0, 50)
    res = certify_threshold(conf, y, target_risk=0.1, delta=0.1)
    assert res.coverage == 45 / 50
    with pytest.warns(UserWarning, match="accept nothing"):
        res = certify_threshold(conf[:35], y[:35], target_risk=0.1, delta=0.1)


def test_param_validation():
    """Every parameter of SelectiveClassifier has a declared constraint."""
    est = SelectiveClassifier(
        ViLUClassifier(
            use_attention=False,
            use_predicted_text=False,
            posterior_head=False,
            **_FAST,
        ),
        target_risk=0.3,
        delta=0.5,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check_param_validation("SelectiveClassifier", est)


@pytest.mark.parametrize("labels", ["int", "bool"])
def test_prefit_calibrated_on_an_all_correct_set_predicts(data, labels):
    # issue 18, defect 4: on 88e3eac, fit worked and predict raised IndexError
    d, y = data
    msp = MSP(logit_scale=d.logit_scale).fit(d.X_img, d.X_txt, y)
    ok = y == 1
    y_cal = y[ok] if labels == "int" else y[ok].astype(bool)
    clf = SelectiveClassifier(msp, cv="prefit", target_risk=0.1).fit(
        d.X_img[ok], d.X_txt, y_cal
    )
    assert clf.coverage_ == 1.0 and len(clf.classes_) == 2
    pred = clf.predict(d.X_img[ok], d.X_txt)
    assert pred.dtype == clf.classes_.dtype and set(pred.tolist()) == {True}
    assert set(clf.predict(d.X_img, d.X_txt).tolist()) <= {0, 1}
    # all wrong: nothing certified, every prediction is an abstention
    with pytest.warns(UserWarning, match="accept nothing"):
        clf.fit(d.X_img[~ok], d.X_txt, y[~ok])
    assert set(clf.predict(d.X_img, d.X_txt).tolist()) == {0}


@pytest.mark.parametrize("method", ["crc_joint", "scan"])
def test_selective_classifier_new_methods(data, method):
    d, y = data
    clf = SelectiveClassifier(
        MSP(logit_scale=d.logit_scale), target_risk=0.3, method=method, random_state=0
    ).fit(d.X_img, d.X_txt, y)
    assert np.isfinite(clf.threshold_) and clf.coverage_ > 0


def test_selective_classifier_crc_is_deprecated(data):
    d, y = data
    clf = SelectiveClassifier(
        MSP(logit_scale=d.logit_scale), target_risk=0.3, method="crc", random_state=0
    )
    with pytest.warns(FutureWarning, match="method='scan'"):
        clf.fit(d.X_img, d.X_txt, y)
