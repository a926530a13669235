"""scikit-learn's estimator checks over every estimator of the package.

Cheap, deterministic configurations (float64, CPU, few epochs) and the checks that
are expected to fail, each with its reason, are kept as data below.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import FAST_VILU, STRING_LABELS, MeaningfulLabels
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from vilu_sklearn import ViLUClassifier
from vilu_sklearn import baselines as bl
from vilu_sklearn._validation import check_embeddings

_FAST = dict(FAST_VILU, max_epochs=20, batch_size=64)


class _GeneratedTexts:
    """Test-only mixin: supplies candidate texts of the input's width.

    The checks feed inputs of many widths, so no fixed (K, d) text matrix can
    match them all: when ``text_embeddings`` is None and ``fit`` gets the
    two-argument form, this mixin draws 3 fixed candidate texts of the input's
    width, then runs the normal code path of the estimator it is mixed into.
    """

    def fit(self, X, y=None, y_correct=None, *, sample_weight=None):
        if self.text_embeddings is None and y_correct is None:
            try:
                d = check_embeddings(X).shape[1]
            except (TypeError, ValueError):  # let fit raise its own error
                d = 1
            texts = np.random.default_rng(d).normal(size=(3, d))
            return super().fit(X, texts, y, sample_weight=sample_weight)
        return super().fit(X, y, y_correct, sample_weight=sample_weight)

    def decision_function(self, X, X_txt=None):
        return super().decision_function(X, X_txt)


class _ConsistentClassLabels:
    """Test-only mixin: class labels that agree with ``y_correct``, for the probes.

    The probes are trained on the true class of each image, which the checks'
    ``fit(X, y)`` does not carry (a scikit-learn user passes it as
    ``fit(..., labels=...)``, like ``sample_weight``). This mixin derives one
    that is consistent with the correctness labels: the VLM's predicted class
    where ``y_correct`` says it is right, the next class where it is wrong.
    """

    def fit(self, X, y=None, y_correct=None, *, sample_weight=None):
        labels = None
        try:
            X_img = check_embeddings(X)
            texts = np.asarray(y, dtype=float)
            cos = (X_img / np.linalg.norm(X_img, axis=1, keepdims=True)) @ texts.T
            pred = np.nan_to_num(cos / np.linalg.norm(texts, axis=1)).argmax(axis=1)
            yc = np.ravel(np.asarray(y_correct))
            right = yc == yc.max()
            labels = np.where(right, pred, (pred + 1) % len(texts))
        except (TypeError, ValueError):  # let fit raise its own error
            n = len(X) if hasattr(X, "__len__") else 1
            labels = np.zeros(n, dtype=np.int64)
        return super().fit(X, y, y_correct, sample_weight=sample_weight, labels=labels)


class _ViLUVisualOnly(MeaningfulLabels, ViLUClassifier):
    pass


# the full ViLU head (attention + predicted text) and the baselines that need texts
class _ViLUWithGeneratedTexts(MeaningfulLabels, _GeneratedTexts, ViLUClassifier):
    pass


class _MSP(MeaningfulLabels, _GeneratedTexts, bl.MSP):
    pass


class _Entropy(MeaningfulLabels, _GeneratedTexts, bl.Entropy):
    pass


class _Doctor(MeaningfulLabels, _GeneratedTexts, bl.Doctor):
    pass


class _Energy(MeaningfulLabels, _GeneratedTexts, bl.Energy):
    pass


class _MaxLogit(MeaningfulLabels, _GeneratedTexts, bl.MaxLogit):
    pass


class _Margin(MeaningfulLabels, _GeneratedTexts, bl.Margin):
    pass


class _TemperatureScaling(MeaningfulLabels, _GeneratedTexts, bl.TemperatureScaling):
    pass


class _RelU(MeaningfulLabels, _GeneratedTexts, bl.RelU):
    pass


class _TrustScore(MeaningfulLabels, _GeneratedTexts, bl.TrustScore):
    pass


class _MCM(MeaningfulLabels, _GeneratedTexts, bl.MCM):
    pass


class _KNN(MeaningfulLabels, _GeneratedTexts, bl.KNN):
    pass


class _Mahalanobis(MeaningfulLabels, _GeneratedTexts, bl.Mahalanobis):
    pass


class _RelativeMahalanobis(MeaningfulLabels, _GeneratedTexts, bl.RelativeMahalanobis):
    pass


class _TrustVLM(MeaningfulLabels, _GeneratedTexts, bl.TrustVLM):
    pass


class _ICPE(MeaningfulLabels, _GeneratedTexts, bl.ICPE):
    pass


class _LVU(MeaningfulLabels, _GeneratedTexts, bl.LVU):
    pass


class _LinearProbe(
    MeaningfulLabels, _GeneratedTexts, _ConsistentClassLabels, bl.LinearProbe
):
    pass


class _MLPProbe(MeaningfulLabels, _GeneratedTexts, _ConsistentClassLabels, bl.MLPProbe):
    pass


ESTIMATORS = [
    _ViLUVisualOnly(
        use_attention=False, use_predicted_text=False, posterior_head=False, **_FAST
    ),
    _MSP(logit_scale=10.0),
    _Entropy(logit_scale=10.0),
    _Doctor(logit_scale=10.0),
    _Doctor(variant="beta", temperature=2.0, logit_scale=10.0),
    _Energy(logit_scale=10.0),
    _MaxLogit(logit_scale=10.0),
    _Margin(logit_scale=10.0),
    _TemperatureScaling(logit_scale=10.0),
    # a fixed temperature: 11 candidates to tune instead of 77 (the full grid
    # is checked in the slow tier)
    _RelU(temperature=1.0, logit_scale=10.0),
    _TrustScore(k=3, logit_scale=10.0),
    _TrustScore(k=3, alpha=0.1, logit_scale=10.0),
    _MCM(),
    _KNN(k=3),
    _KNN(k=3, reference="correct"),
    _Mahalanobis(logit_scale=10.0),
    _RelativeMahalanobis(score_class="predicted", logit_scale=10.0),
    # fixed hyper-parameters: a tuned one depends on a random split, which
    # repeated rows and sample weights change differently
    _TrustVLM(lbd=1.0, logit_scale=10.0),
    _ICPE(n_components=2, logit_scale=10.0),
    _LVU(hidden_layer_sizes=(8,), max_epochs=3, logit_scale=10.0),
    # a fixed C: a tuned one depends on a random split (as TrustVLM above)
    _LinearProbe(C=1.0, logit_scale=10.0),
    _MLPProbe(hidden_size=16, max_epochs=10, lr=1e-2, logit_scale=10.0, device="cpu"),
]
# The long variants, checked in the slow tier (`pytest -m slow`): ViLU with its
# attention and predicted-text inputs costs about twice the visual-only head above;
# RelU tuning both its temperature and lbd costs 7 times the variant above.
SLOW_ESTIMATORS = [
    _RelU(logit_scale=10.0),
    _ViLUWithGeneratedTexts(**_FAST),
    _ViLUWithGeneratedTexts(
        attention="paper", n_heads=1, posterior_head=False, **_FAST
    ),
]

# check name -> reason, for the ViLU estimators
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_classifiers_classes": STRING_LABELS,
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight multiplies each sample's loss, but mini-batch training with "
        "shuffling is not exactly equivalent to repeating rows"
    ),
}

_NO_PREDICT = (
    "no predict: this confidence has no natural threshold, so the baseline "
    "defines decision_function (and score) only"
)
_PREDICT_AT_OWN_THRESHOLD = (
    "predict thresholds the confidence at its natural level (p_max > 0.5, "
    "DOCTOR's D < 1, trust score > 1), while decision_function returns the "
    "confidence itself, not a score centred at 0"
)
_NEEDS_PREDICT = [
    "check_classifier_data_not_an_array",
    "check_classifiers_one_label_sample_weights",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_classifiers_train(readonly_memmap=True)",
    "check_classifiers_train(readonly_memmap=True,X_dtype=float32)",
    "check_supervised_y_2d",
]
_PREDICT_CONSISTENCY = [
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_classifiers_train(readonly_memmap=True)",
    "check_classifiers_train(readonly_memmap=True,X_dtype=float32)",
]
# baseline class -> (check name -> reason); MSP passes all checks on their data
BASELINE_EXPECTED_FAILED_CHECKS: dict[type, dict[str, str]] = {
    **{
        cls: dict.fromkeys(_NEEDS_PREDICT, _NO_PREDICT)
        for cls in (
            bl.Entropy,
            bl.Energy,
            bl.MaxLogit,
            bl.Margin,
            bl.RelU,
            bl.MCM,
            bl.KNN,
            bl.Mahalanobis,
            bl.TrustVLM,
            bl.ICPE,
        )
    },
    **{
        cls: dict.fromkeys(_PREDICT_CONSISTENCY, _PREDICT_AT_OWN_THRESHOLD)
        for cls in (bl.Doctor, bl.TemperatureScaling, bl.TrustScore)
    },
    # LVU passes the predict/decision_function consistency checks on their data
    # (the 3 were stale expected failures, XPASS since session 4)
    bl.LVU: {
        "check_sample_weight_equivalence_on_dense_data": (
            "sample_weight multiplies each sample's loss, but mini-batch training "
            "with shuffling is not exactly equivalent to repeating rows"
        ),
    },
}

# the check zeroes the weights of one class: these predict() by thresholding a
# confidence that does not depend on the training labels' weights (MSP, DOCTOR,
# TrustScore's class sets) or regresses a probability (LVU), so they do not
# return the one label left, and their fit has no reason to refuse the data
_ONE_LABEL_AFTER_TRIMMING = (
    "predict thresholds the confidence at its natural level; sample weights that "
    "remove one class leave that confidence unchanged, so predict does not return "
    "the single remaining label"
)
for _cls in (bl.MSP, bl.Doctor, bl.TrustScore, bl.LVU):
    BASELINE_EXPECTED_FAILED_CHECKS.setdefault(_cls, {})[
        "check_classifiers_one_label_sample_weights"
    ] = _ONE_LABEL_AFTER_TRIMMING

# the probes learn the class labels, not y_correct: weights that remove one
# correctness class leave a probe of the classes, whose probability of the VLM's
# class is not 1 everywhere
_PROBE_ONE_LABEL = (
    "a probe is trained on the class labels, not on y_correct: sample weights "
    "that remove one correctness class still leave a classifier of the classes, "
    "so predict (its probability of the VLM's class > 0.5) does not return the "
    "single remaining label"
)
_PROBE_TRAIN = (
    "a probe learns the class labels, here derived from y_correct and the VLM's "
    "predictions on the checks' generated texts; predict (its probability of the "
    "VLM's class > 0.5) then misses the checks' 0.83 accuracy on y_correct on "
    "these 2-D blobs, which a probe of the classes is not fitted to"
)
for _cls in (bl.LinearProbe, bl.MLPProbe):
    BASELINE_EXPECTED_FAILED_CHECKS.setdefault(_cls, {}).update(
        {
            "check_classifiers_one_label_sample_weights": _PROBE_ONE_LABEL,
            **dict.fromkeys(_PREDICT_CONSISTENCY[1:], _PROBE_TRAIN),
        }
    )

# (The linear posterior head failed check_classifiers_train on the checks'
# generated texts, whose labels are unrelated to the texts: 80 steps did not
# unlearn its MSP prior. The default head, with a 2048-unit hidden layer, passes.)


def _expected_failed_checks(estimator):
    if isinstance(estimator, ViLUClassifier):
        return EXPECTED_FAILED_CHECKS
    for cls, checks in BASELINE_EXPECTED_FAILED_CHECKS.items():
        if isinstance(estimator, cls):
            return {"check_classifiers_classes": STRING_LABELS, **checks}
    return {"check_classifiers_classes": STRING_LABELS}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks(
    SLOW_ESTIMATORS, expected_failed_checks=_expected_failed_checks
)
def test_sklearn_compatible_estimator_slow(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "estimator", ESTIMATORS + SLOW_ESTIMATORS, ids=lambda est: type(est).__name__
)
def test_param_validation(estimator):
    """Every parameter has a declared constraint, checked at the start of fit.

    scikit-learn's ``check_param_validation`` is not among the checks that
    ``parametrize_with_checks`` yields, so it runs here on every estimator.
    """
    check_param_validation(type(estimator).__name__, estimator)
