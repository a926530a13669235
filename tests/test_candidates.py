"""Candidate texts unseen in fit: matching and ViLU's class-agnostic fallback."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._helpers import FAST_VILU, make_toy
from vilu_sklearn import (
    REFERENCE_PARAMS,
    UnseenCandidatesWarning,
    ViLUClassifier,
    correctness,
)
from vilu_sklearn._candidates import class_agnostic_scores, unseen_candidates


def _brute_force_unseen(texts, seen):
    T = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    S = seen / np.linalg.norm(seen, axis=1, keepdims=True)
    return ~np.any(T @ S.T >= 1 - 1e-4, axis=1)


def test_copies_rescaled_and_float16_texts_are_seen():
    rng = np.random.default_rng(0)
    seen = rng.normal(size=(50, 32))
    texts = np.vstack(
        [seen[[3, 1]], 7.5 * seen[[10]], seen[[20]].astype(np.float16), seen[:0]]
    )
    assert not unseen_candidates(texts, seen).any()


def test_new_and_perturbed_texts_are_unseen():
    rng = np.random.default_rng(1)
    seen = rng.normal(size=(50, 32))
    near = seen[[5]] + 0.05 * rng.normal(size=(1, 32))  # cosine about 0.999
    texts = np.vstack([rng.normal(size=(2, 32)), near, seen[[7]]])
    np.testing.assert_array_equal(
        unseen_candidates(texts, seen), [True, True, True, False]
    )


@settings(max_examples=30, deadline=None)
@given(
    k_seen=st.integers(1, 40),
    k=st.integers(1, 40),
    share=st.floats(0, 1),
    seed=st.integers(0, 10_000),
)
def test_matching_equals_the_brute_force(k_seen, k, share, seed):
    rng = np.random.default_rng(seed)
    seen = rng.normal(size=(k_seen, 8))
    copies = rng.random(k) < share
    texts = rng.normal(size=(k, 8))
    texts[copies] = seen[rng.integers(0, k_seen, copies.sum())]
    texts[copies] *= rng.uniform(0.5, 2.0, size=(copies.sum(), 1))
    np.testing.assert_array_equal(
        unseen_candidates(texts, seen), _brute_force_unseen(texts, seen)
    )


def test_class_agnostic_scores_are_the_logit_of_msp():
    rng = np.random.default_rng(2)
    X, T = rng.normal(size=(20, 6)), rng.normal(size=(4, 6))
    cos = (X / np.linalg.norm(X, axis=1, keepdims=True)) @ (
        T / np.linalg.norm(T, axis=1, keepdims=True)
    ).T
    p = np.exp(5.0 * cos)
    msp = (p / p.sum(axis=1, keepdims=True)).max(axis=1)
    np.testing.assert_allclose(
        class_agnostic_scores(X, T, 5.0), np.log(msp / (1 - msp)), rtol=1e-10
    )


def test_class_agnostic_scores_do_not_overflow_at_a_huge_scale():
    rng = np.random.default_rng(3)
    X, T = rng.normal(size=(200, 6)), rng.normal(size=(4, 6))
    cos = np.sort(
        (X / np.linalg.norm(X, axis=1, keepdims=True))
        @ (T / np.linalg.norm(T, axis=1, keepdims=True)).T,
        axis=1,
    )
    huge = class_agnostic_scores(X, T, 1e6)
    # the other candidates' logsumexp is their max: the score is s * (c1 - c2)
    np.testing.assert_allclose(huge, 1e6 * (cos[:, -1] - cos[:, -2]), rtol=1e-6)


@pytest.fixture(scope="module")
def four_class_fit():
    X, T, labels, _ = make_toy(n=300, K=6, d=16, seed=0)
    seen = labels < 4
    y = correctness(X[seen], T[:4], labels[seen])
    clf = ViLUClassifier(
        **FAST_VILU, max_epochs=3, posterior_hidden_size=8, logit_scale=10.0
    )
    return clf.fit(X[seen], T[:4], y, labels=labels[seen]), X, T


def test_unseen_classes_get_the_learned_temperature_msp(four_class_fit):
    clf, X, T = four_class_fit
    with pytest.warns(UnseenCandidatesWarning, match="2 of 2 candidate texts"):
        scores = clf.decision_function(X, T[4:])
    scale = float(clf.net_.module_.posterior.scale.detach())
    np.testing.assert_allclose(scores, class_agnostic_scores(X, T[4:], scale))


def test_a_mixed_candidate_set_falls_back_too(four_class_fit):
    clf, X, T = four_class_fit
    with pytest.warns(UnseenCandidatesWarning, match="2 of 6 candidate texts"):
        scores = clf.decision_function(X, T)
    scale = float(clf.net_.module_.posterior.scale.detach())
    np.testing.assert_allclose(scores, class_agnostic_scores(X, T, scale))


def test_seen_candidates_in_any_order_use_the_whole_model(four_class_fit):
    clf, X, T = four_class_fit
    whole = ViLUClassifier(**{**clf.get_params(), "unseen_candidates": "model"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenCandidatesWarning)
        subset = clf.decision_function(X, T[[2, 0, 3]].astype(np.float16))
    whole.__dict__.update(
        {k: v for k, v in clf.__dict__.items() if k.endswith("_") or k == "_cache"}
    )
    np.testing.assert_allclose(
        subset, whole.decision_function(X, T[[2, 0, 3]].astype(np.float16))
    )
    scale = float(clf.net_.module_.posterior.scale.detach())
    assert not np.allclose(subset, class_agnostic_scores(X, T[[2, 0, 3]], scale))


def test_model_option_scores_new_candidates_with_the_whole_model(four_class_fit):
    clf, X, T = four_class_fit
    clf_model = ViLUClassifier(**{**clf.get_params(), "unseen_candidates": "model"})
    clf_model.__dict__.update(
        {k: v for k, v in clf.__dict__.items() if k.endswith("_") or k == "_cache"}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenCandidatesWarning)
        scores = clf_model.decision_function(X, T[4:])
    scale = float(clf.net_.module_.posterior.scale.detach())
    assert not np.allclose(scores, class_agnostic_scores(X, T[4:], scale))


def test_reference_params_keep_the_papers_behaviour():
    assert REFERENCE_PARAMS["unseen_candidates"] == "model"
    assert ViLUClassifier().unseen_candidates == "fallback"


def test_unknown_option_is_refused():
    X, T, _, y = make_toy(n=60)
    with pytest.raises(ValueError, match="unseen_candidates"):
        ViLUClassifier(unseen_candidates="maybe", max_epochs=1).fit(X, T, y)
