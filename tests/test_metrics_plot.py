"""Tests of the Display classes of vilu_sklearn.metrics (Agg backend)."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.base import BaseEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from vilu_sklearn import caption_correctness  # noqa: E402
from vilu_sklearn.metrics import (  # noqa: E402
    ConfidenceHistogramDisplay,
    FailureRocDisplay,
    RiskCoverageDisplay,
    aurc,
    auroc,
    risk_coverage_curve,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + rng.normal(size=120) > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    return X, y, clf


def test_roc_display_from_predictions(data):
    X, y, clf = data
    conf = clf.decision_function(X)
    disp = FailureRocDisplay.from_predictions(y, conf, name="LR")
    assert disp.roc_auc == pytest.approx(auroc(y, conf))
    assert disp.line_.get_label() == f"LR (AUROC = {auroc(y, conf):.3f})"
    xs, ys = disp.line_.get_data()
    assert xs[0] == 0 and ys[0] == 0 and xs[-1] == 1 and ys[-1] == 1
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0)
    # the area under the drawn curve is the AUROC
    assert np.trapezoid(ys, xs) == pytest.approx(disp.roc_auc)
    assert disp.figure_ is disp.ax_.figure
    assert "successes" in disp.ax_.get_ylabel()


def test_roc_display_from_estimator_on_given_ax(data):
    X, y, clf = data
    _, ax = plt.subplots()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    disp = FailureRocDisplay.from_estimator(pipe, X, y, ax=ax, color="red")
    assert disp.ax_ is ax
    assert disp.line_.get_label().startswith("Pipeline (AUROC = ")
    assert disp.line_.get_color() == "red"
    # plot again on the same axes with another name
    disp.plot(ax=ax, name="again")
    assert disp.line_.get_label().startswith("again")
    assert len(ax.get_lines()) == 2


def test_risk_coverage_display(data):
    X, y, clf = data
    conf = clf.decision_function(X)
    disp = RiskCoverageDisplay.from_predictions(y, conf)
    cov, risk, _ = risk_coverage_curve(y, conf)
    xs, ys = disp.line_.get_data()
    np.testing.assert_allclose(xs, cov)
    np.testing.assert_allclose(ys, risk)
    assert disp.line_.get_label() == f"AURC = {aurc(y, conf):.3f}"
    est = RiskCoverageDisplay.from_estimator(clf, X, y)
    assert est.aurc == pytest.approx(aurc(y, conf))
    assert "LogisticRegression" in est.line_.get_label()


def test_histogram_display(data):
    X, y, clf = data
    conf = clf.decision_function(X)
    disp = ConfidenceHistogramDisplay.from_predictions(y, conf, bins=10)
    assert set(disp.bars_) == {"correct", "wrong"}
    assert len(disp.bars_["correct"]) == 10
    heights = np.array([p.get_height() for p in disp.bars_["correct"]])
    widths = np.array([p.get_width() for p in disp.bars_["correct"]])
    assert np.sum(heights * widths) == pytest.approx(1.0)  # density
    counts = ConfidenceHistogramDisplay.from_estimator(clf, X, y, bins=5, density=False)
    total = sum(p.get_height() for bars in counts.bars_.values() for p in bars)
    assert total == len(y)
    assert counts.ax_.get_title() == "LogisticRegression"


class CaptionModel(BaseEstimator):
    mode = "caption"

    def __init__(self, caption_group_size=4, normalize=True):
        self.caption_group_size = caption_group_size
        self.normalize = normalize

    def fit(self, X, X_txt):
        return self

    def decision_function(self, X, X_txt):
        return -np.linalg.norm(np.asarray(X) - np.asarray(X_txt), axis=1)


def test_displays_in_caption_mode():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    X_txt = X + rng.normal(size=(40, 4))
    est = CaptionModel().fit(X, X_txt)
    y_correct = caption_correctness(X, X_txt, group_size=4)
    conf = est.decision_function(X, X_txt)
    disp = FailureRocDisplay.from_estimator(est, X, X_txt)
    assert disp.roc_auc == pytest.approx(auroc(y_correct, conf))
    rc = RiskCoverageDisplay.from_estimator(est, X, X_txt)
    assert rc.aurc == pytest.approx(aurc(y_correct, conf))


def test_display_rejects_2d_confidence():
    with pytest.raises(ValueError, match=r"\[:, 1\]"):
        FailureRocDisplay.from_predictions([1, 0], np.eye(2))


def test_clear_error_without_matplotlib(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install vilu-sklearn\[plot\]"):
        RiskCoverageDisplay.from_predictions([1, 0], [0.9, 0.1])


@pytest.mark.slow  # a fresh interpreter imports the package (and torch)
def test_metrics_import_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, vilu_sklearn.metrics; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_risk_coverage_marks_the_certified_operating_point():
    from vilu_sklearn.selective import calibrate_threshold

    rng = np.random.default_rng(0)
    conf = rng.uniform(size=3000)
    y = (rng.uniform(size=3000) < 0.4 + 0.6 * conf).astype(int)
    t = calibrate_threshold(conf, y, target_risk=0.15)
    disp = RiskCoverageDisplay.from_predictions(y, conf, threshold=t, target_risk=0.15)
    (cov,), (risk,) = disp.point_.get_data()
    assert cov == pytest.approx(np.mean(conf >= t))
    assert risk == pytest.approx(1 - y[conf >= t].mean())
    assert disp.target_line_.get_ydata()[0] == 0.15
    labels = [h.get_label() for h in disp.ax_.get_legend().legend_handles]
    assert "certified threshold" in labels
    nothing = RiskCoverageDisplay.from_predictions(y, conf, threshold=np.inf)
    assert nothing.point_.get_data()[0][0] == 0.0
