"""scikit-learn's estimator checks over every estimator of the package.

Cheap, deterministic configurations (float64, CPU, few epochs) and the checks that
are expected to fail, each with its reason, are kept as data below.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from vilu_sklearn import ViLUClassifier
from vilu_sklearn import baselines as bl
from vilu_sklearn._validation import check_embeddings

_FAST = dict(
    hidden_layer_sizes=(16,),
    max_epochs=20,
    optimizer="adamw",
    lr=1e-2,
    warmup_epochs=0,
    batch_size=64,
    early_stopping=False,
    dtype="float64",
    device="cpu",
    random_state=0,
)


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


def _as_correctness(y):
    """Map two numeric labels other than {0, 1} and {-1, 1} to 0/1 (greater = 1)."""
    if y is None or not (hasattr(y, "__array__") or isinstance(y, list | tuple)):
        return y
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        return y
    values = set(np.unique(arr).tolist())
    if len(values) != 2 or values <= {0, 1} or values <= {-1, 1}:
        return y
    return (arr == arr.max()).astype(np.int64)


class _MeaningfulLabels:
    """Test-only mixin: gives the checks' labels a meaning as correctness.

    The estimators only accept labels whose meaning is unambiguous (bool,
    {0, 1}, {-1, 1}): a failure predictor cannot know which of {1, 2} means
    "the VLM was right". scikit-learn's checks draw such labels (e.g. {a, a + 1}
    for binary-only classifiers), so this maps them as a user would,
    ``y_correct = (y == y.max())``, and every other behaviour is still checked.
    String labels are not mapped (see ``check_classifiers_classes`` below).
    """

    def fit(self, X, y=None, y_correct=None, *, sample_weight=None):
        if y_correct is None:
            y = _as_correctness(y)
        else:
            y_correct = _as_correctness(y_correct)
        return super().fit(X, y, y_correct, sample_weight=sample_weight)

    def score(self, X, y=None, sample_weight=None):
        return super().score(X, _as_correctness(y), sample_weight=sample_weight)


class _ViLUVisualOnly(_MeaningfulLabels, ViLUClassifier):
    pass


# the full ViLU head (attention + predicted text) and the baselines that need texts
class _ViLUWithGeneratedTexts(_MeaningfulLabels, _GeneratedTexts, ViLUClassifier):
    pass


class _MSP(_MeaningfulLabels, _GeneratedTexts, bl.MSP):
    pass


class _Entropy(_MeaningfulLabels, _GeneratedTexts, bl.Entropy):
    pass


class _Doctor(_MeaningfulLabels, _GeneratedTexts, bl.Doctor):
    pass


class _Energy(_MeaningfulLabels, _GeneratedTexts, bl.Energy):
    pass


class _MaxLogit(_MeaningfulLabels, _GeneratedTexts, bl.MaxLogit):
    pass


class _Margin(_MeaningfulLabels, _GeneratedTexts, bl.Margin):
    pass


class _TemperatureScaling(_MeaningfulLabels, _GeneratedTexts, bl.TemperatureScaling):
    pass


class _RelU(_MeaningfulLabels, _GeneratedTexts, bl.RelU):
    pass


class _TrustScore(_MeaningfulLabels, _GeneratedTexts, bl.TrustScore):
    pass


class _MCM(_MeaningfulLabels, _GeneratedTexts, bl.MCM):
    pass


class _KNN(_MeaningfulLabels, _GeneratedTexts, bl.KNN):
    pass


class _Mahalanobis(_MeaningfulLabels, _GeneratedTexts, bl.Mahalanobis):
    pass


class _RelativeMahalanobis(_MeaningfulLabels, _GeneratedTexts, bl.RelativeMahalanobis):
    pass


class _TrustVLM(_MeaningfulLabels, _GeneratedTexts, bl.TrustVLM):
    pass


class _ICPE(_MeaningfulLabels, _GeneratedTexts, bl.ICPE):
    pass


class _LVU(_MeaningfulLabels, _GeneratedTexts, bl.LVU):
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
    _RelU(logit_scale=10.0),
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
]
# The long variants, checked in the slow tier (`pytest -m slow`): ViLU with its
# attention and predicted-text inputs costs about twice the visual-only head above.
SLOW_ESTIMATORS = [
    _ViLUWithGeneratedTexts(**_FAST),
    _ViLUWithGeneratedTexts(
        attention="paper", n_heads=1, posterior_head=False, **_FAST
    ),
]

_STRING_LABELS = (
    "string labels such as 'one'/'two' say nothing about which means 'the VLM "
    "was right': y_correct refuses them (issue 11, defect 6); map them first, "
    "e.g. y_correct = (labels == 'correct')"
)
# check name -> reason, for the ViLU estimators
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_classifiers_classes": _STRING_LABELS,
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
    bl.LVU: {
        **dict.fromkeys(_PREDICT_CONSISTENCY, _PREDICT_AT_OWN_THRESHOLD),
        "check_sample_weight_equivalence_on_dense_data": (
            "sample_weight multiplies each sample's loss, but mini-batch training "
            "with shuffling is not exactly equivalent to repeating rows"
        ),
    },
}


# the default head with the posterior head, on the checks' generated texts
_POSTERIOR_ON_RANDOM_TEXTS = (
    "the checks' labels are unrelated to the generated candidate texts, so the "
    "posterior head's prior (the logit of the VLM's softmax, informative on real "
    "data by construction) is noise here, and 80 steps on 300 rows do not unlearn "
    "it; the same checks pass with posterior_head=False (the paper-attention "
    "variant above)"
)
POSTERIOR_EXPECTED_FAILED_CHECKS: dict[str, str] = {
    **EXPECTED_FAILED_CHECKS,
    **dict.fromkeys(
        [c for c in _PREDICT_CONSISTENCY if c != "check_classifiers_classes"],
        _POSTERIOR_ON_RANDOM_TEXTS,
    ),
}


def _expected_failed_checks(estimator):
    if isinstance(estimator, _GeneratedTexts) and getattr(
        estimator, "posterior_head", False
    ):
        return POSTERIOR_EXPECTED_FAILED_CHECKS
    if isinstance(estimator, ViLUClassifier):
        return EXPECTED_FAILED_CHECKS
    for cls, checks in BASELINE_EXPECTED_FAILED_CHECKS.items():
        if isinstance(estimator, cls):
            return {"check_classifiers_classes": _STRING_LABELS, **checks}
    return {"check_classifiers_classes": _STRING_LABELS}


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
