"""
# Benchmark ViLU against the baselines, with plots

`vilu_sklearn.benchmark` clones every estimator, fits it on one split and scores
it on another with every metric of `vilu_sklearn.metrics.failure_report`
(bootstrap confidence intervals included). ``vilu-sklearn benchmark --plots DIR``
does the same from the command line; here the plots are drawn with the
``Display`` classes.
"""

# %%
import matplotlib.pyplot as plt

from vilu_sklearn import benchmark, default_estimators, format_table
from vilu_sklearn.datasets import make_vlm_embeddings
from vilu_sklearn.metrics import (
    ConfidenceHistogramDisplay,
    FailureRocDisplay,
    RiskCoverageDisplay,
)

d = make_vlm_embeddings(1500, 8, 64, accuracy=0.7, random_state=0)
train, test = slice(0, 1000), slice(1000, None)

# %%
# The default estimators, with short training for this example (the defaults
# train for 20 epochs).
estimators = default_estimators(max_epochs=8, device="cpu", random_state=0)
for name in ("RelU", "TrustScore", "LVU", "ICPE"):  # keep the example fast
    estimators.pop(name)
table = benchmark(
    estimators,
    d.X_img[train],
    d.X_txt,
    d.labels[train],
    d.X_img[test],
    d.labels[test],
    n_resamples=50,
    as_frame=True,
)
print(format_table(table))

# %%
# ROC and risk-coverage curves
# ----------------------------
# The per-sample arrays behind the table are kept in ``table.attrs["arrays"]``.
arrays = table.attrs["arrays"]
fig, (ax_roc, ax_rc) = plt.subplots(1, 2, figsize=(11, 4.5))
for name, arr in arrays.items():
    FailureRocDisplay.from_predictions(
        arr["y_correct"], arr["confidence"], name=name, ax=ax_roc
    )
    RiskCoverageDisplay.from_predictions(
        arr["y_correct"], arr["confidence"], name=name, ax=ax_rc
    )
fig.tight_layout()

# %%
# Confidence of correct and of wrong predictions
# ----------------------------------------------
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, name in zip(axes, ["ViLU", "MSP"], strict=True):
    arr = arrays[name]
    ConfidenceHistogramDisplay.from_predictions(
        arr["y_correct"], arr["confidence"], name=name, ax=ax
    )
fig.tight_layout()
