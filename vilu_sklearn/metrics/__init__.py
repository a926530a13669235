"""Metrics, scorers and plots for the failure prediction of a VLM.

Labels, confidences and the positive class of each metric follow the package
conventions (docs/conventions.md). In addition, in every function here:

* 2-D scores such as a ``predict_proba`` output are rejected; pass ``proba[:, 1]``.
* AURC, E-AURC and AUGRC are on their raw scale, in [0, 1] (FD-Shifts displays
  them x1000); ties in the confidence are grouped, so no metric depends on the
  order of the samples.
* ``sample_weight`` is accepted everywhere; integer weights equal repeating
  samples.
"""

from ._bootstrap import BootstrapCI, bootstrap_ci, paired_bootstrap_ci
from ._plot import ConfidenceHistogramDisplay, FailureRocDisplay, RiskCoverageDisplay
from ._ranking import aupr_error, aupr_success, auroc, fpr_at_tpr
from ._report import failure_report
from ._scorers import (
    FailureScorer,
    aupr_error_scorer,
    aupr_success_scorer,
    auroc_scorer,
    get_scorer,
    get_scorer_names,
    make_failure_scorer,
    neg_augrc_scorer,
    neg_aurc_scorer,
    neg_eaurc_scorer,
    neg_fpr_at_95tpr_scorer,
    neg_risk_at_80coverage_scorer,
)
from ._selective import (
    augrc,
    aurc,
    coverage_at_risk,
    eaurc,
    risk_at_coverage,
    risk_coverage_curve,
)

__all__ = [
    "BootstrapCI",
    "ConfidenceHistogramDisplay",
    "FailureRocDisplay",
    "FailureScorer",
    "RiskCoverageDisplay",
    "aupr_error",
    "aupr_error_scorer",
    "aupr_success",
    "aupr_success_scorer",
    "augrc",
    "aurc",
    "auroc",
    "auroc_scorer",
    "bootstrap_ci",
    "coverage_at_risk",
    "eaurc",
    "failure_report",
    "fpr_at_tpr",
    "get_scorer",
    "get_scorer_names",
    "make_failure_scorer",
    "neg_augrc_scorer",
    "neg_aurc_scorer",
    "neg_eaurc_scorer",
    "neg_fpr_at_95tpr_scorer",
    "neg_risk_at_80coverage_scorer",
    "paired_bootstrap_ci",
    "risk_at_coverage",
    "risk_coverage_curve",
]
