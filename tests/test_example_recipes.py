"""examples/compare_recipes.py: the script behind the defaults table of docs/vilu.md."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import load_example

from vilu_sklearn import correctness
from vilu_sklearn.datasets import make_vlm_embeddings


def _load():
    return load_example("compare_recipes")


def _write(path, with_test: bool):
    d = make_vlm_embeddings(500, 6, 32, accuracy=0.7, random_state=0)
    arrays = {
        "X_img_train": d.X_img[:400],
        "y_train": d.labels[:400],
        "X_txt": d.X_txt,
        "logit_scale": 50.0,
    }
    if with_test:
        arrays |= {"X_img_test": d.X_img[400:], "y_test": d.labels[400:]}
    np.savez(path, **arrays)
    return d


def test_compare_recipes_never_needs_a_test_split(tmp_path, capsys):
    # the file has no test arrays at all: the script must still run
    path = tmp_path / "train_only.npz"
    _write(path, with_test=False)
    rows = _load().main(
        [str(path), '{"name": "tiny", "max_epochs": 2, "hidden_layer_sizes": [16]}']
    )
    out = capsys.readouterr().out
    assert "| tiny |" in out and "MSP validation AUROC" in out
    (row,) = rows
    assert row["name"] == "tiny" and row["seeds"] == [0, 1]
    assert 0.0 <= row["auroc"] <= 100.0 and row["auroc_spread"] >= 0.0
    assert row["epochs"] == [2, 2]


def test_load_training_part_ignores_the_test_arrays(tmp_path):
    path = tmp_path / "full.npz"
    d = _write(path, with_test=True)
    data = _load().load_training_part(str(path))
    assert "X_img_test" not in data and "y_test" not in data
    np.testing.assert_array_equal(
        data["y_correct_train"], correctness(d.X_img[:400], d.X_txt, d.labels[:400])
    )


def test_validation_split_is_stratified_and_disjoint():
    y = np.r_[np.ones(80, int), np.zeros(20, int)]
    fit_idx, val_idx = _load().validation_split(y, 0.25, seed=0)
    assert len(np.intersect1d(fit_idx, val_idx)) == 0
    assert len(fit_idx) + len(val_idx) == 100
    assert y[val_idx].mean() == pytest.approx(0.8)


def test_one_seed_is_refused(tmp_path):
    path = tmp_path / "t.npz"
    _write(path, with_test=False)
    with pytest.raises(SystemExit):
        _load().main([str(path), "--seeds", "0"])
