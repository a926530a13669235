"""
# Selective prediction: a threshold for a target error rate

A failure predictor is used by accepting the predictions whose confidence is
above a threshold and sending the others to a human (or a larger model). Here
the threshold is certified on held-out (calibration) data with Learn-Then-Test
(`vilu_sklearn.selective.calibrate_threshold`): the error rate among the
accepted predictions (the *selective risk*) on new i.i.d. data is at most the
target with probability at least 1 - delta. It is then checked on new data.
See [selective prediction](../../selective.md) for what the guarantee is and
is not.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from vilu_sklearn import ViLUClassifier, correctness
from vilu_sklearn.datasets import make_vlm_embeddings
from vilu_sklearn.metrics import RiskCoverageDisplay, coverage_at_risk
from vilu_sklearn.selective import calibrate_threshold

d = make_vlm_embeddings(4000, 8, 64, accuracy=0.7, random_state=1)
y_correct = correctness(d.X_img, d.X_txt, d.labels)
fit, held_out, new = slice(0, 2000), slice(2000, 3000), slice(3000, None)

clf = ViLUClassifier(
    hidden_layer_sizes=(64,),
    max_epochs=15,
    device="cpu",
    random_state=0,
).fit(d.X_img[fit], d.X_txt, y_correct[fit])

# %%
# Certify the threshold on the held-out images
# ---------------------------------------------
# With 1,000 calibration images, Learn-Then-Test certifies the lowest threshold
# whose selective risk is at most ``target`` with probability 0.9.
target, delta = 0.15, 0.1
conf_held_out = clf.predict_proba(d.X_img[held_out], d.X_txt)[:, 1]
threshold = calibrate_threshold(
    conf_held_out, y_correct[held_out], target_risk=target, delta=delta
)
print(f"certified threshold {threshold:.3f}")
print(
    "held-out coverage at the threshold:",
    round(float(np.mean(conf_held_out >= threshold)), 3),
    "| largest coverage at this risk without a guarantee:",
    round(coverage_at_risk(y_correct[held_out], conf_held_out, risk=target), 3),
)

# %%
# Apply it to new images
# ----------------------
# The certificate is about the error rate on the population: on a finite new
# set the measured rate fluctuates around it (about ±0.015 here), and with
# probability up to ``delta`` over calibration draws the threshold itself is
# too permissive.
conf_new = clf.predict_proba(d.X_img[new], d.X_txt)[:, 1]
accepted = conf_new >= threshold
print(f"VLM error rate on all new images: {1 - y_correct[new].mean():.3f}")
print(f"accepted {accepted.mean():.1%} of the new images")
print(f"error rate among accepted ones: {1 - y_correct[new][accepted].mean():.3f}")

# %%
# The risk-coverage curve of the new images, with the target.
display = RiskCoverageDisplay.from_predictions(
    y_correct[new], conf_new, name="ViLU", threshold=threshold, target_risk=target
)
plt.tight_layout()
