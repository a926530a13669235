"""
# Quick start: should you trust each prediction?

A vision-language model (VLM) such as CLIP classifies an image by the cosine
similarity of its embedding with the embeddings of class prompts. ViLU learns,
from these embeddings alone, the probability that this zero-shot prediction is
correct. Labels and scores follow the package
[conventions](../../conventions.md).
"""

# %%
# Data: synthetic CLIP-like embeddings
# ------------------------------------
# 1,200 images of 8 classes in 64 dimensions, with a VLM that is right about 70 %
# of the time. ``X_txt`` holds one embedding per class prompt.
import numpy as np

from vilu_sklearn import ViLUClassifier, correctness, zero_shot_predict
from vilu_sklearn.baselines import MSP
from vilu_sklearn.datasets import make_vlm_embeddings
from vilu_sklearn.metrics import aupr_error, auroc

d = make_vlm_embeddings(1200, 8, 64, accuracy=0.7, random_state=0)
X_train, X_test = d.X_img[:800], d.X_img[800:]
y_correct_train = correctness(X_train, d.X_txt, d.labels[:800])
y_correct_test = correctness(X_test, d.X_txt, d.labels[800:])
print(f"VLM accuracy on the test images: {y_correct_test.mean():.3f}")

# %%
# Fit ViLU on the correctness labels
# ----------------------------------
# A small head and a few epochs keep this example fast; the defaults are sized
# for real data (see [The ViLU model](../../vilu.md)).
clf = ViLUClassifier(
    hidden_layer_sizes=(64,),
    max_epochs=15,
    device="cpu",
    random_state=0,
)
clf.fit(X_train, d.X_txt, y_correct_train)
p_correct = clf.predict_proba(X_test, d.X_txt)[:, 1]
predicted_class, _ = zero_shot_predict(X_test, d.X_txt)
order = np.argsort(p_correct)
print("least and most trusted test images:")
for i in [*order[:3], *order[-3:]]:
    print(
        f"  image {i}: predicted class {predicted_class[i]}, "
        f"P(correct) = {p_correct[i]:.2f}, actually correct: {bool(y_correct_test[i])}"
    )

# %%
# How well does the confidence separate successes from failures?
# -------------------------------------------------------------------
# Compared with the maximum softmax probability of the VLM itself (MSP), a
# training-free baseline with the same interface.
msp = MSP().fit(X_train, d.X_txt, y_correct_train)
for name, confidence in [
    ("ViLU", p_correct),
    ("MSP", msp.decision_function(X_test, d.X_txt)),
]:
    print(
        f"{name:5s} AUROC {auroc(y_correct_test, confidence):.3f}  "
        f"AUPR-error {aupr_error(y_correct_test, confidence):.3f}"
    )
