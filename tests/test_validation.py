"""Label and embedding checks of vilu_sklearn._validation (issue 11 regressions)."""

from __future__ import annotations

import numpy as np
import pytest

from vilu_sklearn import benchmark, l2_normalize
from vilu_sklearn._validation import check_y_correct
from vilu_sklearn.baselines import MSP


def test_single_class_keeps_its_meaning():
    # defect 2: an all-correct split was encoded as all-wrong
    y, classes = check_y_correct([1, 1, 1], n_samples=3)
    assert y.tolist() == [1, 1, 1] and classes.tolist() == [1]
    y, _ = check_y_correct([True, True], n_samples=2)
    assert y.tolist() == [1, 1]
    y, _ = check_y_correct(np.array([0.0, 0.0]), n_samples=2)
    assert y.tolist() == [0, 0]


def test_benchmark_all_correct_test_split():
    rng = np.random.default_rng(0)
    X_txt = np.eye(3, 8)
    labels = rng.integers(0, 3, 60)
    X_img = X_txt[labels] + rng.normal(scale=0.3, size=(60, 8))
    y_train = np.r_[np.ones(30, int), np.zeros(10, int)]
    rows = benchmark(
        {"MSP": MSP(logit_scale=10.0)},
        X_img[:40],
        X_txt,
        y_train,
        X_img[40:],
        np.ones(20, int),
        y_kind="correct",
        n_resamples=0,
        as_frame=False,
    )
    assert rows[0]["accuracy"] == 1.0
    assert rows[0]["aurc"] == 0.0


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([-1, 1, 1], [0, 1, 1]),
        ([False, True, True], [0, 1, 1]),
        ([0.0, 1.0, 1.0], [0, 1, 1]),
    ],
)
def test_unambiguous_labels(labels, expected):
    assert check_y_correct(labels, n_samples=3)[0].tolist() == expected


@pytest.mark.parametrize(
    "labels",
    [
        ["correct", "incorrect", "correct"],
        ["yes", "no", "yes"],
        [1, 2, 1],
        [2, 3, 3],
    ],
)
def test_ambiguous_labels_are_refused(labels):
    # defect 6: "incorrect" < "correct" alphabetically was read as correct
    with pytest.raises(ValueError, match="y_correct.*ambiguous"):
        check_y_correct(labels, n_samples=3)


def test_pos_label_gives_the_meaning():
    y, classes = check_y_correct(
        ["correct", "incorrect", "correct"], n_samples=3, pos_label="correct"
    )
    assert y.tolist() == [1, 0, 1]
    assert classes.tolist() == ["incorrect", "correct"]  # classes[1] = correct
    with pytest.raises(ValueError, match="pos_label 'right' is not among"):
        check_y_correct(["a", "b", "a"], n_samples=3, pos_label="right")


@pytest.mark.parametrize(
    "labels",
    [[0.5, 1.0, 0.0], [0, 1, 2], [[0, 1], [1, 0], [1, 1]], ["a", "b", "c"]],
)
def test_label_errors_name_the_argument(labels):
    # defect 19: messages from scikit-learn did not name y_correct
    with pytest.raises(ValueError, match="y_correct"):
        check_y_correct(labels, n_samples=3)


def test_estimator_refuses_string_labels():
    X = np.random.default_rng(0).normal(size=(6, 4))
    with pytest.raises(ValueError, match="y_correct.*ambiguous"):
        MSP().fit(X, np.eye(3, 4), ["correct", "incorrect"] * 3)


@pytest.mark.parametrize("scale", [1e-30, 1e-13, 1e20, 1e30])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_normalize_is_scale_safe(scale, dtype):
    # defect 14: float32 norms overflowed (>= 1e20) or fell under eps (<= 1e-13)
    X = np.random.default_rng(0).normal(size=(4, 16))
    out = l2_normalize((X * scale).astype(dtype))
    np.testing.assert_allclose(out, l2_normalize(X), rtol=1e-4, atol=1e-6)
    zero = l2_normalize(np.zeros((1, 3), dtype))
    assert np.all(zero == 0)
