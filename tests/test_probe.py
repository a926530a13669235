"""The label-trained probes (vilu_sklearn.baselines.LinearProbe, MLPProbe)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import make_toy
from sklearn.linear_model import LogisticRegression

from vilu_sklearn import baselines as bl
from vilu_sklearn.datasets import make_vlm_embeddings

PROBES = [
    bl.LinearProbe(),
    # small batches: 640 training rows of 24-d synthetic data need the steps
    bl.MLPProbe(hidden_size=32, max_epochs=40, lr=1e-2, batch_size=32, patience=10),
]


@pytest.fixture(scope="module")
def data():
    return make_vlm_embeddings(1200, 5, 24, accuracy=0.7, random_state=0)


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: type(p).__name__)
def test_probes_need_the_class_labels(probe, data):
    with pytest.raises(ValueError, match="trained on the class labels.*labels="):
        probe.fit(data.X_img, data.X_txt, data.y_correct)
    with pytest.raises(ValueError, match="labels must be integer class indices"):
        probe.fit(data.X_img, data.X_txt, data.y_correct, labels=data.labels + 0.5)


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: type(p).__name__)
def test_probe_score_is_its_probability_of_the_vlm_class(probe, data):
    """The score is P(VLM's predicted class); it ranks failures well here."""
    probe.set_params(logit_scale=data.logit_scale)
    probe.fit(
        data.X_img[:800], data.X_txt, data.y_correct[:800], labels=data.labels[:800]
    )
    X = data.X_img[800:]
    conf = probe.decision_function(X)
    pred = (X / np.linalg.norm(X, axis=1, keepdims=True)) @ data.X_txt.T
    assert np.all((conf >= 0) & (conf <= 1))
    # the probe's own class probabilities, read at the VLM's prediction
    from vilu_sklearn.baselines._image_space import image_points

    P = probe._proba(image_points(X, True))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(conf, P[np.arange(len(X)), pred.argmax(axis=1)])
    # AUROC 0.73-0.75 measured (MSP 0.73); chance is 0.5
    assert probe.score(X, data.y_correct[800:]) > 0.65


def test_linear_probe_matches_logistic_regression_and_tunes_c(data):
    X_img, X_txt, labels, y = make_toy(n=300, K=4, d=8, seed=1)
    probe = bl.LinearProbe(C=0.1).fit(X_img, X_txt, y, labels=labels)
    assert probe.validation_aurocs_ is None and probe.C_ == 0.1
    X = X_img / np.linalg.norm(X_img, axis=1, keepdims=True)
    Z = (X - X.mean(0)) / X.std(0)
    ref = LogisticRegression(C=0.1, max_iter=300).fit(Z, labels)
    np.testing.assert_allclose(probe._proba(X), ref.predict_proba(Z), atol=1e-5)
    tuned = bl.LinearProbe(Cs=(0.01, 1.0)).fit(X_img, X_txt, y, labels=labels)
    assert tuned.C_ in (0.01, 1.0) and tuned.validation_aurocs_.shape == (2,)


def test_linear_probe_classes_absent_from_the_labels_get_probability_zero():
    X_img, X_txt, labels, y = make_toy(n=300, K=4, d=8, seed=2)
    keep = labels != 3
    probe = bl.LinearProbe(C=1.0).fit(X_img[keep], X_txt, y[keep], labels=labels[keep])
    X = X_img / np.linalg.norm(X_img, axis=1, keepdims=True)
    assert np.all(probe._proba(X)[:, 3] == 0)


def test_mlp_probe_early_stopping_keeps_the_best_epoch(data):
    probe = bl.MLPProbe(hidden_size=16, max_epochs=8, patience=2, lr=1e-2)
    probe.fit(data.X_img, data.X_txt, data.y_correct, labels=data.labels)
    aurocs = probe.validation_aurocs_
    assert 1 <= len(aurocs) <= 8
    assert probe.best_epoch_ == int(np.argmax(aurocs)) + 1


def test_probes_cannot_score_other_candidates(data):
    probe = bl.LinearProbe().fit(
        data.X_img, data.X_txt, data.y_correct, labels=data.labels
    )
    with pytest.raises(ValueError, match="candidate"):
        probe.decision_function(data.X_img, data.X_txt[:3])
    assert probe._unseen_classes == "n/a" and probe._supervision == "labels"
