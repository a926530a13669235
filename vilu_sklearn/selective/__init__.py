"""Selective prediction with guarantees: certified thresholds and PPI estimates.

* :func:`calibrate_threshold` / :func:`certify_threshold`: a confidence
  threshold whose accepted predictions have an error rate of at most
  ``target_risk`` on new i.i.d. data, with probability ``1 - delta`` over the
  calibration draw (Learn-Then-Test, SGR); or whose share of predictions
  accepted and wrong is at most ``target_risk`` in expectation (conformal
  risk control, ``method="crc_joint"``).
* :func:`certify_coverage`: the dual question, the risk certified at a coverage.
* :class:`SelectiveClassifier`: a meta-estimator that accepts (1) or abstains (0).
* :func:`estimate_accuracy`, :func:`estimate_selective_risk`: prediction-powered
  inference on unlabelled data with a small labelled audit set.

Conventions: docs/conventions.md; a prediction is accepted where
``confidence >= threshold``. See docs/selective.md for what each guarantee is
and is not.
"""

from ._classifier import SelectiveClassifier
from ._ppi import PPIEstimate, estimate_accuracy, estimate_selective_risk
from ._threshold import (
    CertifiedThreshold,
    calibrate_threshold,
    certify_coverage,
    certify_threshold,
)

__all__ = [
    "CertifiedThreshold",
    "PPIEstimate",
    "SelectiveClassifier",
    "calibrate_threshold",
    "certify_coverage",
    "certify_threshold",
    "estimate_accuracy",
    "estimate_selective_risk",
]
