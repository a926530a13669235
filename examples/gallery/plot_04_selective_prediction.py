"""
# Selective prediction: a threshold for a target error rate

A failure predictor is used by accepting the predictions whose confidence is
above a threshold and sending the others to a human (or a larger model). Here
the threshold is chosen on held-out data so that the error rate among the
accepted predictions (the *selective risk*) stays below a target, and then
checked on new data.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from vilu_sklearn import ViLUClassifier, correctness
from vilu_sklearn.datasets import make_vlm_embeddings
from vilu_sklearn.metrics import (
    RiskCoverageDisplay,
    coverage_at_risk,
    risk_coverage_curve,
)

d = make_vlm_embeddings(2400, 8, 64, accuracy=0.7, random_state=1)
y_correct = correctness(d.X_img, d.X_txt, d.labels)
fit, held_out, new = slice(0, 1200), slice(1200, 1800), slice(1800, None)

clf = ViLUClassifier(
    hidden_layer_sizes=(64,),
    max_epochs=15,
    device="cpu",
    random_state=0,
).fit(d.X_img[fit], d.X_txt, y_correct[fit])

# %%
# Choose the threshold on the held-out images
# -------------------------------------------
# ``risk_coverage_curve`` gives the selective risk of every threshold; the
# lowest threshold whose risk meets the target accepts the most predictions.
target = 0.10
conf_held_out = clf.predict_proba(d.X_img[held_out], d.X_txt)[:, 1]
coverage, risk, thresholds = risk_coverage_curve(y_correct[held_out], conf_held_out)
ok = np.flatnonzero(risk <= target)
threshold = thresholds[ok[-1]] if ok.size else np.inf
print(f"threshold {threshold:.3f}: held-out coverage {coverage[ok[-1]]:.3f}")
print(
    "largest coverage at this risk (held out):",
    round(coverage_at_risk(y_correct[held_out], conf_held_out, risk=target), 3),
)

# %%
# Apply it to new images
# ----------------------
conf_new = clf.predict_proba(d.X_img[new], d.X_txt)[:, 1]
accepted = conf_new >= threshold
print(f"VLM error rate on all new images: {1 - y_correct[new].mean():.3f}")
print(f"accepted {accepted.mean():.1%} of the new images")
print(f"error rate among accepted ones: {1 - y_correct[new][accepted].mean():.3f}")

# %%
# The risk-coverage curve of the new images, with the target.
display = RiskCoverageDisplay.from_predictions(y_correct[new], conf_new, name="ViLU")
display.ax_.axhline(target, color="grey", linestyle="--", label="target risk")
display.ax_.legend()
plt.tight_layout()
