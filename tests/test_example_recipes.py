"""examples/compare_recipes.py: the script behind the defaults table of docs/vilu.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vilu_sklearn import correctness, zero_shot_predict
from vilu_sklearn.datasets import make_vlm_embeddings

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "compare_recipes.py"


def _load():
    spec = importlib.util.spec_from_file_location("compare_recipes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_recipes_reports_the_run(tmp_path, capsys):
    d = make_vlm_embeddings(700, 6, 32, accuracy=0.7, random_state=0)
    path = tmp_path / "emb.npz"
    np.savez(
        path,
        X_img_train=d.X_img[:500],
        y_train=d.labels[:500],
        X_img_test=d.X_img[500:],
        y_test=d.labels[500:],
        X_txt=d.X_txt,
        logit_scale=50.0,
    )
    out = _load().main([str(path), '{"max_epochs": 2, "hidden_layer_sizes": [16]}'])
    y_te = correctness(d.X_img[500:], d.X_txt, d.labels[500:])
    _, proba = zero_shot_predict(d.X_img[500:], d.X_txt, logit_scale=50.0)
    assert out["vlm_accuracy"] == pytest.approx(y_te.mean())
    assert out["msp_auroc"] == pytest.approx(roc_auc_score(y_te, proba.max(axis=1)))
    assert 0.0 <= out["vilu_auroc"] <= 1.0 and out["epochs"] == 2
    assert '"vilu_auroc"' in capsys.readouterr().out
