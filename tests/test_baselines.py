"""Tests of the baseline failure predictors (vilu_sklearn.baselines)."""

from __future__ import annotations

import math
import pickle
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import brentq
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score

from vilu_sklearn import ViLUClassifier, caption_correctness, correctness
from vilu_sklearn import baselines as bl
from vilu_sklearn.metrics import auroc

TRAINING_FREE = [
    bl.MSP,
    bl.Entropy,
    bl.Doctor,
    bl.Energy,
    bl.MaxLogit,
    bl.Margin,
]
FITTED = [bl.TemperatureScaling, bl.RelU, bl.TrustScore]
ALL = TRAINING_FREE + FITTED

# --- the hand-computed case -------------------------------------------------
# X_txt = I_3, so cos(x, X_txt) = x / ||x||. With x = (0.6, 0.8, 0) and
# logit_scale s = 5 ln 2, the logits are s * (0.6, 0.8, 0); relative to the
# first one, exp(logits) = (1, 2^1, 2^-3), so p = (8, 16, 1) / 25
# = (0.32, 0.64, 0.04).
S = 5 * math.log(2)
X_TXT3 = np.eye(3)
X_HAND = np.array([[0.6, 0.8, 0.0], [1.0, 0.0, 0.0]])
# second row: cos (1, 0, 0), exp(logits) = (1, 2^-5, 2^-5): q = (32, 1, 1) / 34
Y_HAND = np.array([0, 1])
P = np.array([8, 16, 1]) / 25
Q = np.array([32, 1, 1]) / 34


def _fit(est, X=X_HAND, X_txt=X_TXT3, y=Y_HAND):
    return est.fit(X, X_txt, y)


def test_msp_hand_computed():
    est = _fit(bl.MSP(logit_scale=S))
    conf = est.decision_function(X_HAND[:1])
    assert_allclose(conf, [0.64])  # p_max
    assert_allclose(est.predict_proba(X_HAND[:1]), [[0.36, 0.64]])
    assert_array_equal(est.predict(X_HAND[:1]), [1])  # 0.64 > 0.5


def test_entropy_hand_computed():
    # sum p ln p = 0.32 ln 0.32 + 0.64 ln 0.64 + 0.04 ln 0.04
    #            = -0.364619 - 0.285624 - 0.128755 = -0.778998; / ln 3 -> -0.709074
    est = _fit(bl.Entropy(logit_scale=S, eps=0.0))
    assert_allclose(est.decision_function(X_HAND[:1]), [-0.7090743088643241])
    # the reference's ln(p + 1e-6): -0.7090715781601554
    est = _fit(bl.Entropy(logit_scale=S))
    assert_allclose(est.decision_function(X_HAND[:1]), [-0.7090715781601554])


def test_doctor_hand_computed():
    # g = sum p^2 = (64 + 256 + 1) / 625 = 321/625; -D_alpha = -(304/625)/(321/625)
    est = _fit(bl.Doctor(logit_scale=S))
    assert_allclose(est.decision_function(X_HAND[:1]), [-304 / 321])
    # -D_beta = -(1 - 0.64) / 0.64 = -0.5625
    est = _fit(bl.Doctor(logit_scale=S, variant="beta"))
    assert_allclose(est.decision_function(X_HAND[:1]), [-0.5625])
    # temperature 5 ln 2 / ln 2 = 5 turns the logits into ln 2 * (0.6, 0.8, 0):
    # exp -> 2^0.6, 2^0.8, 1; p_max = 2^0.8 / (2^0.6 + 2^0.8 + 1)
    est = _fit(bl.Doctor(logit_scale=S, variant="beta", temperature=5.0))
    pm = 2**0.8 / (2**0.6 + 2**0.8 + 1)
    assert_allclose(est.decision_function(X_HAND[:1]), [-(1 - pm) / pm])
    # DOCTOR's rule D < 1: D_alpha = 0.947 < 1 -> predicted correct
    assert_array_equal(_fit(bl.Doctor(logit_scale=S)).predict(X_HAND[:1]), [1])


def test_energy_maxlogit_margin_hand_computed():
    # logsumexp(logits) = 0.6 s + ln(1 + 2 + 1/8) = 3 ln 2 + ln(25 / 8) = ln 25
    est = _fit(bl.Energy(logit_scale=S))
    assert_allclose(est.decision_function(X_HAND[:1]), [math.log(25)])
    # T = 2: 2 * logsumexp(logits / 2) = 2 * (0.3 s + ln(1 + 2^0.5 + 2^-1.5))
    est = _fit(bl.Energy(logit_scale=S, temperature=2.0))
    expected = 2 * (0.3 * S + math.log(1 + 2**0.5 + 2**-1.5))
    assert_allclose(est.decision_function(X_HAND[:1]), [expected])
    # max logit = 0.8 s = 4 ln 2
    est = _fit(bl.MaxLogit(logit_scale=S))
    assert_allclose(est.decision_function(X_HAND[:1]), [4 * math.log(2)])
    # margin = 0.64 - 0.32
    est = _fit(bl.Margin(logit_scale=S))
    assert_allclose(est.decision_function(X_HAND[:1]), [0.32])


def test_temperature_scaling_hand_computed():
    # the same image twice, once right and once wrong: the binary NLL
    # -ln p - ln(1 - p) is minimal at p_max(T) = 1/2. The gaps to the top logit
    # are ln 2 and 4 ln 2, so p_max(T) = 1 / (1 + u + u^4) with u = 2^(-1/T):
    # u + u^4 = 1 -> u = 0.724492, T = -ln 2 / ln u = 2.150730
    X = X_HAND[[0, 0]]
    est = bl.TemperatureScaling(logit_scale=S).fit(X, X_TXT3, [1, 0])
    u = brentq(lambda u: u + u**4 - 1, 0, 1)
    assert_allclose(est.temperature_, -math.log(2) / math.log(u), rtol=1e-5)
    assert_allclose(est.predict_proba(X[:1])[:, 1], [0.5], atol=1e-6)
    # sample weights equal repeated rows: weight 3 on the success gives
    # -3 ln p - ln(1 - p), minimal at p = 3/4
    est = bl.TemperatureScaling(logit_scale=S).fit(
        X, X_TXT3, [1, 0], sample_weight=[3, 1]
    )
    assert_allclose(est.decision_function(X[:1]), [0.75], atol=1e-6)


def test_relu_hand_computed():
    # one wrong sample (p) and one right sample (q); lbd = 1/2:
    # D_ij = ReLU(p_i p_j / 2 - q_i q_j / 2) off the diagonal
    #   D_01 = (0.2048 - 32/1156) / 2 = 0.0885592
    #   D_02 = (0.0128 - 32/1156) / 2 < 0 -> 0
    #   D_12 = (0.0256 - 1/1156) / 2 = 0.0123675
    # ||D||_F = sqrt(2 (D_01^2 + D_12^2)) = 0.1264570
    est = _fit(bl.RelU(logit_scale=S))
    D01 = (0.2048 - 32 / 1156) / 2
    D12 = (0.0256 - 1 / 1156) / 2
    D = np.array([[0, D01, 0], [D01, 0, D12], [0, D12, 0]])
    D /= math.sqrt(2 * (D01**2 + D12**2))
    assert_allclose(est.D_, D)
    assert not est.gini_fallback_
    # confidence -p^T D p: -0.2918546 (wrong) < -0.0389407 (right)
    assert_allclose(est.decision_function(X_HAND), [-P @ D @ P, -Q @ D @ Q], rtol=1e-12)
    assert_allclose(est.decision_function(X_HAND), [-0.2918546, -0.0389407], atol=1e-7)


def test_relu_gini_fallback():
    # lbd = 0 only penalises the right samples: no positive entry, so D falls
    # back to (1 - I) / sqrt(6), and -p^T D p = -(1 - sum p^2) / sqrt(6)
    est = _fit(bl.RelU(logit_scale=S, lbd=0.0))
    assert est.gini_fallback_
    assert_allclose(est.D_, (1 - np.eye(3)) / math.sqrt(6))
    assert_allclose(
        est.decision_function(X_HAND[:1]), [-(1 - 321 / 625) / math.sqrt(6)]
    )


def test_trust_score_hand_computed():
    # texts e_0, e_1; raw dot products (normalize=False). Correct training images
    # of class 0: (1, 0), (2, 0); of class 1: (0, 1), (0, 3); one wrong image.
    X_txt = np.eye(2)
    X = np.array([[1.0, 0], [2, 0], [0, 1], [0, 3], [0.5, 0.4]])
    y = np.array([1, 1, 1, 1, 0])
    x = np.array([[1.0, 0.5]])  # predicted class 0 (dot products 1 > 0.5)
    # k = 1: d(class 1) / d(class 0) = |(1, -0.5)| / |(0, 0.5)| = 1.118034 / 0.5
    est = bl.TrustScore(k=1, normalize=False).fit(X, X_txt, y)
    assert_allclose(est.decision_function(x), [math.sqrt(1.25) / 0.5])
    assert_array_equal(est.predict(x), [1])  # ratio > 1
    # k = 2: |(1, -2.5)| / |(-1, 0.5)| = 2.692582 / 1.118034
    est = bl.TrustScore(k=2, normalize=False).fit(X, X_txt, y)
    assert_allclose(est.decision_function(x), [math.sqrt(7.25) / math.sqrt(1.25)])
    # k larger than the classes: capped at the class size (same as k = 2)
    est = bl.TrustScore(k=50, normalize=False).fit(X, X_txt, y)
    assert_allclose(est.decision_function(x), [math.sqrt(7.25) / math.sqrt(1.25)])
    # integer weights act as repeated rows: weight 2 on (1, 0) makes it the
    # k = 2 neighbour of class 0 as well
    w = np.array([2.0, 1, 1, 1, 1])
    est = bl.TrustScore(k=2, normalize=False).fit(X, X_txt, y, sample_weight=w)
    rep = bl.TrustScore(k=2, normalize=False).fit(
        np.vstack([X, X[:1]]), X_txt, np.append(y, 1)
    )
    assert_allclose(est.decision_function(x), [math.sqrt(7.25) / 0.5])
    assert_allclose(est.decision_function(x), rep.decision_function(x))


def test_trust_score_class_without_members():
    # only class 0 has correct training images: the other-class distance is the
    # bound ||x|| + max ||x_i|| = 1 + 1 (unit vectors)
    X_txt = np.eye(2)
    X = np.array([[1.0, 0.0], [1.0, -0.1], [0.0, 1.0]])
    y = np.array([1, 1, 0])
    est = bl.TrustScore(k=1).fit(X, X_txt, y)
    assert_array_equal(est.class_counts_, [2, 0])
    # (1, 0) is a member (distance 0 -> min_dist): 2 / 1e-12
    assert_allclose(est.decision_function(X[:1]), [2 / 1e-12])
    # (0, 1) is predicted as class 1, which has no members: d_pred = 2,
    # d_other = |(0, 1) - (1, 0)| = sqrt 2
    assert_allclose(est.decision_function(X[2:]), [math.sqrt(2) / 2])


# --- synthetic data ---------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X_txt = rng.normal(size=(5, 12))
    labels = rng.integers(0, 5, size=240)
    X = X_txt[labels] + rng.normal(scale=2.0, size=(240, 12))
    y = correctness(X, X_txt, labels)
    assert 0.2 < y.mean() < 0.9
    return X, X_txt, y


@pytest.mark.parametrize("cls", ALL)
def test_call_forms_agree(cls, data):
    X, X_txt, y = data
    three = cls().fit(X, X_txt, y)
    two = cls(text_embeddings=X_txt).fit(X, y)
    expected = three.decision_function(X)
    assert_array_equal(two.decision_function(X), expected)
    assert_array_equal(three.decision_function(X, X_txt), expected)
    assert_array_equal(two.decision_function(X, X_txt), expected)
    assert two.n_features_in_ == 12
    assert_array_equal(two.classes_, [0, 1])
    assert_allclose(three.score(X, y), auroc(y, expected))


@pytest.mark.parametrize("cls", ALL)
def test_input_dtypes_and_pickle(cls, data):
    X, X_txt, y = data
    est = cls(logit_scale=20.0).fit(X, X_txt, y)
    expected = est.decision_function(X)
    for dtype in (np.float32, np.float16):
        conf = est.decision_function(X.astype(dtype), X_txt.astype(dtype))
        assert conf.dtype == np.float64
        assert_allclose(conf, expected, rtol=1e-2, atol=1e-2)
    again = pickle.loads(pickle.dumps(est))
    assert_array_equal(again.decision_function(X), expected)


@pytest.mark.parametrize("cls", ALL)
def test_chunking_is_exact(cls, data):
    X, X_txt, y = data
    one_shot = cls(predict_batch_size=10_000).fit(X, X_txt, y).decision_function(X)
    chunked = cls(predict_batch_size=7).fit(X, X_txt, y).decision_function(X)
    assert_allclose(chunked, one_shot, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [bl.MSP, bl.Entropy, bl.RelU])
def test_prediction_memory_is_bounded(cls):
    # n = 20000, K = 400: the full (n, K) float64 matrix would be 64 MB; with
    # 500-row blocks one block is 1.6 MB
    rng = np.random.default_rng(0)
    X_txt = rng.normal(size=(400, 8)).astype(np.float32)
    X = rng.normal(size=(20_000, 8)).astype(np.float32)
    y = np.arange(20_000) % 2
    est = cls(predict_batch_size=500).fit(X[:1000], X_txt, y[:1000])
    tracemalloc.start()
    est.decision_function(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    block = 500 * 400 * 8
    assert peak < 4 * block, (peak, block)


def _reference_scores(name, logits):
    """Direct numpy computation of each training-free score."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    K = logits.shape[1]
    top2 = np.sort(p, axis=1)[:, -2:]
    g = (p**2).sum(axis=1)
    return {
        "MSP": p.max(axis=1),
        "Entropy": (p * np.log(p + 1e-6)).sum(axis=1) / np.log(K),
        "Doctor": -(1 - g) / g,
        "Energy": np.log(np.exp(z).sum(axis=1)) + logits.max(axis=1),
        "MaxLogit": logits.max(axis=1),
        "Margin": top2[:, 1] - top2[:, 0],
    }[name]


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("cls", TRAINING_FREE)
def test_caption_mode_matches_numpy(cls):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(11, 6))
    captions = X + rng.normal(scale=0.8, size=(11, 6))
    est = cls(mode="caption", caption_group_size=4, logit_scale=10.0)
    est.fit(X, captions)
    conf = est.decision_function(X, captions)
    expected = np.empty(11)
    for sl in (slice(0, 4), slice(4, 8), slice(8, 11)):  # groups of 4, 4, 3
        logits = 10.0 * _unit(X[sl]) @ _unit(captions[sl]).T
        expected[sl] = _reference_scores(cls.__name__, logits)
    assert_allclose(conf, expected, rtol=1e-12, atol=1e-12)
    y = caption_correctness(X, captions, group_size=4)
    assert_allclose(est.score(X, captions), auroc(y, conf))
    with pytest.raises(ValueError, match="paired captions"):
        est.decision_function(X)


@pytest.mark.parametrize("cls", [bl.MSP, bl.Entropy, bl.Margin])
def test_caption_group_of_one(cls):
    X = np.eye(3)
    est = cls(mode="caption", caption_group_size=2).fit(X, X)
    conf = est.decision_function(X, X)
    assert np.isfinite(conf).all()
    # a single candidate is certain: p = 1, entropy 0, margin 1
    assert conf[2] == {"MSP": 1.0, "Entropy": 0.0, "Margin": 1.0}[cls.__name__]


@pytest.mark.parametrize("cls", TRAINING_FREE)
def test_training_free_classification_matches_numpy(cls, data):
    X, X_txt, y = data
    conf = cls(logit_scale=7.0).fit(X, X_txt, y).decision_function(X)
    logits = 7.0 * _unit(X) @ _unit(X_txt).T
    assert_allclose(conf, _reference_scores(cls.__name__, logits), rtol=1e-10)


def test_cross_validation_and_grid_search(data):
    X, X_txt, y = data
    for est in (
        bl.RelU(text_embeddings=X_txt),
        bl.TrustScore(text_embeddings=X_txt, k=3),
        bl.MSP(text_embeddings=X_txt),
    ):
        scores = cross_val_score(est, X, y, cv=3, scoring="roc_auc")
        assert scores.shape == (3,) and np.all(scores > 0.5)
        assert_allclose(cross_val_score(est, X, y, cv=3), scores)  # score = AUROC
    search = GridSearchCV(
        bl.Doctor(text_embeddings=X_txt),
        {"variant": ["alpha", "beta"], "temperature": [1.0, 3.0]},
        scoring="roc_auc",
        cv=3,
    ).fit(X, y)
    assert search.best_score_ > 0.5
    search = GridSearchCV(
        bl.TemperatureScaling(text_embeddings=X_txt),
        {"logit_scale": [10.0, 100.0]},
        scoring="roc_auc",
        cv=3,
    ).fit(X, y)
    assert search.best_estimator_.temperature_ > 0
    # caption mode: images and captions are sliced together
    search = GridSearchCV(
        bl.Entropy(mode="caption", caption_group_size=16),
        {"logit_scale": [10.0, 100.0]},
        cv=3,
    ).fit(X, X + np.random.default_rng(0).normal(scale=3.0, size=X.shape))
    assert 0.5 < search.best_score_ <= 1


def test_temperature_scaling_minimises_nll(data):
    X, X_txt, y = data
    est = bl.TemperatureScaling().fit(X, X_txt, y)

    def nll(T):
        p = clone(est).fit(X, X_txt, y).set_params()  # fitted copy
        p.temperature_ = T
        pm = np.clip(p.decision_function(X), 1e-12, 1 - 1e-12)
        return -np.mean(y * np.log(pm) + (1 - y) * np.log(1 - pm))

    best = nll(est.temperature_)
    for factor in (0.9, 1.1):
        assert best <= nll(est.temperature_ * factor)
    assert est.temperature_ > 1  # logit scale 100 is overconfident here
    proba = est.predict_proba(X)
    assert_allclose(proba.sum(axis=1), 1)
    assert_array_equal(est.predict(X), (proba[:, 1] > 0.5).astype(int))


@pytest.mark.parametrize(
    "est, message",
    [
        (
            bl.Doctor(variant="gamma"),
            r"'variant' parameter of Doctor must be a str among",
        ),
        (
            bl.Doctor(temperature=0),
            r"'temperature' parameter of Doctor must be a float in the range \(0",
        ),
        (
            bl.Energy(temperature=-1.0),
            r"'temperature' parameter of Energy must be a float in the range \(0",
        ),
        (
            bl.Entropy(eps=-1.0),
            r"'eps' parameter of Entropy must be a float in the range \[0.0, 1.0\)",
        ),
        (
            bl.RelU(lbd=1.5),
            r"'lbd' parameter of RelU must be a float in the range \[0.0, 1.0\]",
        ),
        (
            bl.TrustScore(k=0),
            r"'k' parameter of TrustScore must be an int in the range \[1, inf\)",
        ),
        (
            bl.TrustScore(min_dist=0),
            r"'min_dist' parameter of TrustScore must be a float in the range \(0",
        ),
        (
            bl.MSP(logit_scale=0),
            r"'logit_scale' parameter of MSP must be a float in the range \(0",
        ),
        (bl.MSP(mode="retrieval"), r"'mode' parameter of MSP must be a str among"),
        (
            bl.MSP(caption_group_size=0),
            r"'caption_group_size' parameter of MSP must be an int in the range \[1",
        ),
        (
            bl.MSP(predict_batch_size=0),
            r"'predict_batch_size' parameter of MSP must be an int in the range \[1",
        ),
        (bl.TemperatureScaling(temperature_bounds=(2, 1)), "low < high"),
        (bl.TemperatureScaling(temperature_bounds=(0, 1)), "'temperature_bounds'"),
        (bl.MSP(normalize="False"), "'normalize' parameter of MSP must be"),
        (bl.MSP(predict_batch_size=2.5), "'predict_batch_size' parameter of MSP"),
        (bl.Doctor(temperature=float("nan")), "'temperature' parameter of Doctor"),
        (bl.TrustScore(k=True), "'k' parameter of TrustScore"),
        (bl.RelU(mode="caption"), "RelU supports mode='classification' only"),
        (bl.TemperatureScaling(mode="caption"), "classification' only"),
        (bl.TrustScore(mode="caption"), "classification' only"),
    ],
)
def test_parameter_errors(est, message, data):
    X, X_txt, y = data
    with pytest.raises(ValueError, match=message):
        est.fit(X, X_txt, y)


def test_input_errors(data):
    X, X_txt, y = data
    with pytest.raises(ValueError, match="No candidate text embeddings"):
        bl.MSP().fit(X, y)
    with pytest.raises(ValueError, match=r"X_txt has 11 features per row"):
        bl.MSP().fit(X, X_txt[:, :11], y)
    with pytest.raises(NotFittedError):
        bl.Entropy().decision_function(X)
    est = bl.MSP().fit(X, X_txt, y)
    with pytest.raises(ValueError, match="X has 11 features"):
        est.decision_function(X[:, :11])
    # training-free baselines take any candidate set at prediction
    assert est.decision_function(X, X_txt[:3]).shape == (240,)
    for cls in (bl.RelU, bl.TrustScore):
        fitted = cls().fit(X, X_txt, y)
        with pytest.raises(ValueError, match=r"X_txt has 3 candidate texts.*K=5"):
            fitted.decision_function(X, X_txt[:3])
    with pytest.raises(ValueError, match="text_embeddings must be None"):
        bl.MSP(mode="caption", text_embeddings=X_txt).fit(X, X)
    with pytest.raises(ValueError, match="y_correct holds only one class"):
        bl.RelU().fit(X, X_txt, np.ones(240))
    for cls in (bl.Entropy, bl.Energy, bl.MaxLogit, bl.Margin, bl.RelU):
        assert not hasattr(cls(), "predict_proba")
        assert not hasattr(cls(), "predict")


def test_make_lvu():
    lvu = bl.make_lvu(max_epochs=2, hidden_layer_sizes=(8,), random_state=0)
    assert type(lvu) is ViLUClassifier
    assert not lvu.use_attention and not lvu.use_predicted_text
    assert lvu.max_epochs == 2
    assert clone(lvu).get_params()["use_attention"] is False
    with pytest.raises(TypeError, match="fixes use_attention=False"):
        bl.make_lvu(use_attention=True)


# --- real CIFAR-10 embeddings (skipped when the shared file is absent) --------
def _cifar_probabilities(cifar):
    X = cifar["X_img_test"].astype(np.float64)
    T = cifar["X_txt"].astype(np.float64)
    logits = float(cifar["logit_scale"]) * _unit(X) @ _unit(T).T
    z = logits - logits.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def test_cifar_reference_definitions(cifar):
    # vilu_method.md 3.2: MCM = max p; entropy = sum p log(p + 1e-6) / log K
    # (matched exactly: eps=1e-6 is Entropy's default); DOCTOR = -(1 - g) / g
    X, T, s = cifar["X_img_test"], cifar["X_txt"], float(cifar["logit_scale"])
    y = correctness(X, T, cifar["y_test"])
    p = _cifar_probabilities(cifar)
    g = (p**2).sum(axis=1)
    reference = {
        bl.MSP: p.max(axis=1),
        bl.Entropy: (p * np.log(p + 1e-6)).sum(axis=1) / np.log(10),
        bl.Doctor: -(1 - g) / g,
    }
    for cls, expected in reference.items():
        conf = cls(logit_scale=s).fit(X, T, y).decision_function(X)
        assert_allclose(conf, expected, rtol=0, atol=1e-6)


def test_cifar_fitted_baselines_beat_chance(cifar):
    T, s = cifar["X_txt"], float(cifar["logit_scale"])
    X_tr, X_te = cifar["X_img_train"][:5000], cifar["X_img_test"]
    y_tr = correctness(X_tr, T, cifar["y_train"][:5000])
    y_te = correctness(X_te, T, cifar["y_test"])
    for est in (
        bl.TemperatureScaling(logit_scale=s),
        bl.RelU(logit_scale=s),
        bl.TrustScore(logit_scale=s),
    ):
        conf = est.fit(X_tr, T, y_tr).decision_function(X_te)
        assert auroc(y_te, conf) > 0.5, type(est).__name__


# ---------------------------------------------------------------- issue 11
def _fixed_candidate_data(seed=0):
    rng = np.random.default_rng(seed)
    X_txt = rng.normal(size=(4, 8))
    labels = rng.integers(0, 4, 200)
    X_img = X_txt[labels] + rng.normal(scale=1.0, size=(200, 8))
    from vilu_sklearn import correctness

    return X_img, X_txt, correctness(X_img, X_txt, labels)


@pytest.mark.parametrize("cls", [bl.TrustScore, bl.RelU])
def test_fixed_candidates_refuse_reordered_prompts(cls):
    # defect 8: reordered class prompts silently changed the scores
    X_img, X_txt, y = _fixed_candidate_data()
    est = cls().fit(X_img, X_txt, y)
    same = est.decision_function(X_img[:5], X_txt.astype(np.float16))
    np.testing.assert_allclose(same, est.decision_function(X_img[:5]), rtol=1e-2)
    with pytest.raises(ValueError, match="X_txt.*order"):
        est.decision_function(X_img[:5], X_txt[[1, 0, 2, 3]])
    with pytest.raises(ValueError, match="X_txt.*differ"):
        est.decision_function(X_img[:5], X_txt + 1.0)


@pytest.mark.parametrize("cls", [bl.MSP, bl.TrustScore])
def test_text_columns_must_match_image_feature_names(cls):
    # defect 7: reordered DataFrame columns of X_txt were accepted silently
    pd = pytest.importorskip("pandas")
    X_img, X_txt, y = _fixed_candidate_data()
    cols = [f"e{i}" for i in range(8)]
    img = pd.DataFrame(X_img, columns=cols)
    txt = pd.DataFrame(X_txt, columns=cols)
    est = cls().fit(img, txt, y)
    est.decision_function(img, txt)
    shuffled = txt[cols[::-1]]
    with pytest.raises(ValueError, match="X_txt.*columns"):
        cls().fit(img, shuffled, y)
    with pytest.raises(ValueError, match="X_txt.*columns"):
        est.decision_function(img, shuffled)
