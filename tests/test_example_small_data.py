"""examples/small_data.py: ViLU variants against a probe on a development split."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import load_example

from vilu_sklearn.datasets import make_vlm_embeddings


def _load():
    return load_example("small_data")


def _tiny(seed, n=400):
    d = make_vlm_embeddings(n, 5, 32, accuracy=0.7, random_state=seed)
    return dict(
        X_img_train=d.X_img,
        y_train=d.labels,
        # the script must not read the test split: NaN would poison any score
        X_img_test=np.full((10, 32), np.nan, dtype=np.float32),
        y_test=np.zeros(10, dtype=np.int64),
        X_txt=d.X_txt,
        logit_scale=float(d.logit_scale),
    )


def test_dev_split_holds_out_a_fifth_of_the_training_rows():
    mod = _load()
    fit, val = mod.dev_split(10_000)
    assert len(val) == 2_000 and len(fit) == 8_000
    assert not set(fit) & set(val)
    # the permutation is fixed: the same rows on every call
    np.testing.assert_array_equal(mod.dev_split(10_000)[1], val)


def test_main_prints_one_row_per_data_set(tmp_path, monkeypatch, capsys):
    mod = _load()
    monkeypatch.setattr(mod, "_synthetic_data", _tiny)
    path = tmp_path / "real.npz"
    np.savez(path, **_tiny(7))
    rows = mod.main(
        ["--seeds", "0,1", "--data", str(path), "--max-epochs", "2",
         "--variants", "default,early_stopping"]
    )  # fmt: skip
    assert [r["data"] for r in rows] == [
        "default data, seed 0",
        "default data, seed 1",
        "real.npz",
    ]
    for row in rows:
        for name in ("MSP", "LinearProbe", "default", "early_stopping"):
            assert 0.0 <= row[name] <= 100.0
    printed = capsys.readouterr().out
    assert (
        "| data | fit rows | MSP | LinearProbe | default | early_stopping |" in printed
    )
    assert "| real.npz | 320 |" in printed


def test_unknown_variant_is_refused():
    mod = _load()
    with pytest.raises(SystemExit, match="unknown.*'nope'"):
        mod.main(["--seeds", "", "--variants", "default,nope"])
