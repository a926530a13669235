"""examples/selective_validity.py: the acceptance script of issue 9, on tiny sizes."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import load_example


def _load():
    return load_example("selective_validity")


def test_threshold_validity_on_synthetic_scores():
    mod = _load()
    split, audit = mod.synthetic_draws(1000, 3000, 100, 3000)
    res = mod.threshold_validity(
        split, n_splits=20, target_risk=0.15, delta=0.2, seed=0
    )
    assert set(res) == set(mod.METHODS)
    for name, r in res.items():
        assert 0.0 <= r["exceed_freq"] <= 1.0
        if name != "crc_joint":  # it controls another quantity, see the script
            assert 0.0 <= r["mean_coverage"] <= r["oracle_coverage"] + 0.1
    # conformal risk control: the population share accepted and wrong
    assert res["crc_joint"]["mean_joint_share"] <= 0.15 + 0.02
    assert split.exact_joint(0.0) == pytest.approx(split.exact_risk(0.0))
    # the exact population risk of the synthetic model
    assert split.exact_risk(0.0) == pytest.approx(1 - (0.35 + 0.65 / 1.7))
    assert split.exact_risk(1.0) == 0.0
    ppi = mod.ppi_validity(audit, n_reps=20, seed=0)
    assert 0.5 <= ppi["coverage"] <= 1.0 and ppi["width_ratio"] > 0


def test_pool_draws_and_main_without_data(capsys):
    mod = _load()
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=2000)
    y = (rng.uniform(size=2000) < conf).astype(int)
    split, audit = mod.pool_draws(conf, conf, y, 500, 50)
    c_cal, y_cal, c_te, y_te = split(rng)
    assert len(c_cal) == 500 and len(c_te) == 1500
    assert split.exact_risk(0.5) == pytest.approx(1 - y[conf >= 0.5].mean())
    p_u, p_a, y_a, truth = audit(rng)
    assert len(p_a) == 50 and truth == pytest.approx(y.mean())
    out = mod.main(["--n-splits", "10", "--n-cal", "400", "--n-audit", "60",
                    "--synthetic-test", "1000"])  # fmt: skip
    assert "synthetic" in out and "synthetic_ppi" in out
    assert "exceed freq" in capsys.readouterr().out


def test_ppi_tables_on_tiny_sizes():
    mod = _load()
    table = mod.ppi_table(n_reps=5, sizes=(20, 200), accuracies=(0.95,), seed=0)
    assert set(table) == {"0.95/20", "0.95/200"}
    assert table["0.95/20"]["share_exact"] == 1.0  # 20 labels: < 10 failures
    for cell in table.values():
        assert 0.0 <= cell["coverage"] <= 1.0 and cell["mean_width"] > 0
    sr = mod.selective_risk_table(n_reps=5, sizes=(50,), seed=0)
    assert 0.0 <= sr[50] <= 1.0
