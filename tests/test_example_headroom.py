"""examples/headroom.py: what a failure predictor can gain over MSP on a file."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import load_example

from vilu_sklearn import ViLUClassifier
from vilu_sklearn.datasets import make_vlm_embeddings


def _load():
    return load_example("headroom")


def _file(tmp_path, n=1200, n_test=300):
    d = make_vlm_embeddings(n + n_test, 6, 32, accuracy=0.7, random_state=0)
    path = tmp_path / "emb.npz"
    np.savez(
        path,
        X_img_train=d.X_img[:n],
        y_train=d.labels[:n],
        # the script must not use these: NaN would poison any score
        X_img_test=np.full((n_test, 32), np.nan, dtype=np.float32),
        y_test=d.labels[n:],
        X_txt=d.X_txt,
        logit_scale=float(d.logit_scale),
    )
    return path


def test_vilu_terms_add_up_to_the_decision_function():
    mod = _load()
    d = make_vlm_embeddings(400, 5, 32, accuracy=0.7, random_state=1)
    y = (np.asarray(d.X_img @ d.X_txt.T).argmax(1) == d.labels).astype(int)
    clf = ViLUClassifier(logit_scale=float(d.logit_scale), max_epochs=3, random_state=0)
    clf.fit(d.X_img, d.X_txt, y, labels=d.labels)
    terms = mod.vilu_terms(clf, d.X_img, d.X_txt)
    assert terms.shape == (400, 2)
    np.testing.assert_allclose(
        terms.sum(1), clf.decision_function(d.X_img, d.X_txt), atol=1e-4
    )
    # the posterior term is not the whole score: the branch is not all zeros
    assert np.ptp(terms[:, 1]) > 0


def test_subset_reindexes_labels_and_recomputes_correctness():
    mod = _load()
    T = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.8, 0]], dtype=np.float32)
    X = np.array([[0.9, 0.1, 0], [0.1, 0.9, 0], [0, 0.2, 0.9]], dtype=np.float32)
    labels = np.array([3, 1, 2])
    Xs, Ts, lab, y = mod.subset(X, labels, T, np.array([1, 3]))
    assert Xs.shape == (2, 3) and Ts.shape == (2, 3)
    np.testing.assert_array_equal(lab, [1, 0])  # class 3 -> 1, class 1 -> 0
    # row 0 (class 3) is nearer prompt 3 than prompt 1 among {1, 3}: correct;
    # row 1 (class 1) is nearer prompt 1: correct
    np.testing.assert_array_equal(y, [1, 1])


def test_main_reports_oracle_and_transfer_without_reading_the_test_split(
    tmp_path, capsys
):
    mod = _load()
    out = mod.main([str(_file(tmp_path)), "--class-splits", "2", "--skip-vilu"])
    assert len(out["unseen_per_split"]) == 2
    keys = set(out["unseen"])
    assert "MSP" in keys and "TemperatureScaling (seen classes)" in keys
    assert any("oracle" in k for k in keys)
    assert all(40.0 <= v <= 100.0 for v in out["unseen"].values())
    assert {"MSP", "LinearProbe", "MLPProbe"} <= set(out["fixed"])
    assert "ViLU (labels)" not in out["fixed"]
    printed = capsys.readouterr().out
    assert "Unseen classes: mean over 2 class splits" in printed
    assert "vs MSP" in printed and "nan" not in printed.lower()


@pytest.mark.slow
def test_main_with_vilu_splits_its_score(tmp_path):
    mod = _load()
    out = mod.main([str(_file(tmp_path)), "--class-splits", "2"])
    fixed = out["fixed"]
    assert {
        "ViLU (labels)",
        "  its posterior term alone",
        "  its ViLU branch alone",
    } <= set(fixed)
