"""examples/synthetic_realism.py: rank agreement of default and real benchmarks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from vilu_sklearn.baselines import MSP, Energy, Entropy, TrustScore
from vilu_sklearn.datasets import make_vlm_embeddings

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "synthetic_realism.py"


def _load():
    spec = importlib.util.spec_from_file_location("synthetic_realism", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _split(seed, n=900, n_train=600):
    d = make_vlm_embeddings(n, 8, 48, accuracy=0.65, random_state=seed)
    return dict(
        X_img_train=d.X_img[:n_train],
        y_train=d.labels[:n_train],
        X_img_test=d.X_img[n_train:],
        y_test=d.labels[n_train:],
        X_txt=d.X_txt,
        logit_scale=float(d.logit_scale),
        description=f"tiny synthetic seed {seed}",
    )


def test_compare_spearman_and_below_chance():
    mod = _load()
    default = {"a": 0.9, "b": 0.7, "c": 0.45, "d": 0.8}
    real = {"a": 0.85, "b": 0.75, "c": 0.6, "d": 0.7, "extra": 0.5}
    out = mod.compare(default, real)
    assert out["methods"] == ["a", "b", "c", "d"]
    expected = spearmanr([0.9, 0.7, 0.45, 0.8], [0.85, 0.75, 0.6, 0.7]).statistic
    assert out["spearman"] == pytest.approx(expected)
    assert out["below_chance"] == ["c"]
    text = mod.report(default, real)
    assert "FAIL" in text and "'c'" in text
    assert "PASS" in mod.report(
        {"a": 0.9, "b": 0.6, "c": 0.7}, {"a": 3, "b": 1, "c": 2}
    )


def test_cached_aurocs_fits_only_what_is_missing(monkeypatch):
    mod = _load()
    data = _split(0)
    est = {"MSP": MSP(logit_scale=100.0), "Energy": Energy(logit_scale=100.0)}
    cache: dict = {}
    first = mod.cached_aurocs(est, data, "tiny", cache)
    assert set(first) == {"MSP", "Energy"} and len(cache) == 2
    assert all(0.0 <= v <= 1.0 for v in first.values())

    def refuse(*args, **kwargs):
        raise AssertionError("a cached estimator was refitted")

    monkeypatch.setattr(mod, "_auroc_table", refuse)
    assert mod.cached_aurocs(est, data, "tiny", cache) == first
    # another data id or other parameters are not served from the cache
    with pytest.raises(AssertionError, match="refitted"):
        mod.cached_aurocs(est, data, "other data", cache)
    with pytest.raises(AssertionError, match="refitted"):
        mod.cached_aurocs({"MSP": MSP(logit_scale=50.0)}, data, "tiny", cache)


def test_main_on_tiny_data(tmp_path, monkeypatch, capsys):
    mod = _load()
    real = _split(1)
    path = tmp_path / "real.npz"
    np.savez(path, **{k: v for k, v in real.items() if k != "description"})
    monkeypatch.setattr(mod, "_synthetic_data", lambda seed: _split(2))
    fast = {
        "MSP": MSP(),
        "Entropy": Entropy(),
        "Energy": Energy(),
        "TrustScore": TrustScore(),
    }
    monkeypatch.setattr(mod, "default_estimators", lambda logit_scale, **kw: dict(fast))
    cache = tmp_path / "cache.json"
    out = mod.main([str(path), "--cache", str(cache)])
    assert set(out["default"]) == set(out["real"]) == set(fast)
    assert len(json.loads(cache.read_text())) == 4
    printed = capsys.readouterr().out
    assert "Spearman rank correlation" in printed and "| TrustScore |" in printed
    out2 = mod.main(
        [str(path), "--methods", "MSP,Energy", "--reuse-real", '{"MSP": 0.99}']
    )
    assert out2["real"]["MSP"] == 0.99 and set(out2["default"]) == {"MSP", "Energy"}
