"""examples/synthetic_realism.py: rank agreement of default and real benchmarks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _helpers import load_example
from scipy.stats import spearmanr

from vilu_sklearn.baselines import MSP, Energy, Entropy, TrustScore
from vilu_sklearn.datasets import make_vlm_embeddings


def _load():
    return load_example("synthetic_realism")


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


def test_cache_key_tells_apart_classes_with_the_same_parameters():
    mod = _load()
    from vilu_sklearn.baselines import Margin, MaxLogit

    keys = {mod._cache_key(E(logit_scale=100.0), "d") for E in (MSP, MaxLogit, Margin)}
    assert len(keys) == 3


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
    out = mod.main([str(path), "--cache", str(cache), "--class-splits", "2"])
    assert set(out["default"]) == set(out["real"]) == set(fast)
    # the unseen protocol leaves out the methods that need the seen classes
    assert set(out["unseen"]["default"]) == set(out["unseen"]["real"])
    assert set(out["unseen"]["default"]) == {"MSP", "Entropy", "Energy"}
    assert len(json.loads(cache.read_text())) == 4 + 3
    printed = capsys.readouterr().out
    assert "Spearman rank correlation" in printed and "| TrustScore |" in printed
    assert "Protocol: unseen classes" in printed and "Minimum AUROC" in printed
    out2 = mod.main(
        [str(path), "--methods", "MSP,Energy", "--reuse-real", '{"MSP": 0.99}',
         "--protocols", "fixed"]
    )  # fmt: skip
    assert out2["real"]["MSP"] == 0.99 and set(out2["default"]) == {"MSP", "Energy"}
    assert set(out2) == {"default", "real", "fixed"}
    out3 = mod.main(
        [str(path), "--methods", "MSP,Energy", "--protocols", "unseen",
         "--class-splits", "2", "--reuse-real-unseen", '{"Energy": 0.01}']
    )  # fmt: skip
    assert out3["unseen"]["real"]["Energy"] == 0.01
    assert out3["unseen"]["real"]["MSP"] == out["unseen"]["real"]["MSP"]


def test_effect_sizes_lead_and_label_value():
    mod = _load()
    table = {
        "ViLU": 0.84,
        mod.NO_LABELS: 0.83,
        "ViLU (paper)": 0.835,
        "MSP": 0.80,
        "TemperatureScaling": 0.805,
        "MLPProbe": 0.836,
    }
    eligible = {"MSP", "TemperatureScaling"}  # probes and ViLU variants excluded
    eff = mod.effect_sizes(table, eligible)
    assert eff["best_other"] == "TemperatureScaling"
    assert eff["lead"] == pytest.approx(0.035)
    assert eff["label_value"] == pytest.approx(0.01)
    real = dict(table, ViLU=0.82)  # lead 1.5 points, label value -1
    text = mod.report(table, real, eligible)
    assert "ratio 2.33" in text and "FAIL" in text
    same = mod.report(table, table, eligible)
    assert "ratio 1.00" in same and "Acceptance (fixed): PASS" in same


def test_eligible_excludes_vilu_and_label_trained_methods():
    mod = _load()
    from vilu_sklearn import default_estimators

    eligible = mod._eligible(default_estimators())
    assert "TemperatureScaling" in eligible and "MSP" in eligible
    assert not {"ViLU", "ViLU (paper)", "LinearProbe", "MLPProbe"} & eligible


def test_effect_check_ratio_or_difference():
    mod = _load()
    # a real effect of at least one AUROC point: judged by the ratio
    assert mod.effect_check(0.030, 0.036)[0]
    assert not mod.effect_check(0.060, 0.036)[0]  # ratio 1.67
    assert not mod.effect_check(-0.020, 0.036)[0]  # opposite sign
    assert "ratio 0.83" in mod.effect_check(0.030, 0.036)[1]
    # a real tie (|effect| < 1 point): judged by the difference, within 1 point
    ok, how = mod.effect_check(-0.0023, -0.0010)
    assert ok and "difference -0.13" in how
    assert not mod.effect_check(0.015, -0.001)[0]
    assert not mod.effect_check(float("nan"), 0.02)[0]
    text = mod.report(
        {"ViLU": 0.80, mod.NO_LABELS: 0.80, "MSP": 0.805, "Margin": 0.79},
        {"ViLU": 0.833, mod.NO_LABELS: 0.832, "MSP": 0.833, "Margin": 0.831},
        {"MSP", "Margin"},
        "unseen",
    )
    assert "difference -0.50" in text and "Acceptance (unseen): PASS" in text


def test_published_real_covers_both_protocols():
    mod = _load()
    assert set(mod.PUBLISHED_CIFAR10_UNSEEN) < set(mod.PUBLISHED_CIFAR10)
    # the unseen table holds only methods that apply to unseen classes
    assert not {"LinearProbe", "MLPProbe", "ICPE", "TrustScore"} & set(
        mod.PUBLISHED_CIFAR10_UNSEEN
    )
