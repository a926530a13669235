"""The benchmark function, the table formats and the ``vilu-sklearn`` command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from vilu_sklearn import benchmark, default_estimators, format_table
from vilu_sklearn._cli import main
from vilu_sklearn.baselines import MSP, Doctor, Entropy
from vilu_sklearn.datasets import make_caption_embeddings, make_vlm_embeddings
from vilu_sklearn.metrics import auroc, fpr_at_tpr


@pytest.fixture(scope="module")
def small():
    return make_vlm_embeddings(900, 8, 32, accuracy=0.7, random_state=0)


@pytest.fixture
def small_npz(small, write_npz):
    """``small`` as an ``.npz`` file (X_img, y, X_txt) for the CLI."""
    return write_npz(X_img=small.X_img, y=small.labels, X_txt=small.X_txt)


def _split(d, n_train=600):
    return (
        d.X_img[:n_train],
        d.X_txt,
        d.labels[:n_train],
        d.X_img[n_train:],
        d.labels[n_train:],
    )


def test_benchmark_rows_match_direct_metrics(small):
    X_tr, T, y_tr, X_te, y_te = _split(small)
    rows = benchmark(
        {"MSP": MSP(logit_scale=100.0), "Entropy": Entropy()},
        X_tr,
        T,
        y_tr,
        X_te,
        y_te,
        n_resamples=50,
        as_frame=False,
    )
    assert [r["method"] for r in rows] == ["MSP", "Entropy"]
    msp = MSP(logit_scale=100.0).fit(X_tr, T, np.r_[0, np.ones(len(X_tr) - 1)])
    conf = msp.decision_function(X_te, T)
    from vilu_sklearn import correctness

    y = correctness(X_te, T, y_te)
    assert rows[0]["auroc"] == pytest.approx(auroc(y, conf))
    assert rows[0]["fpr_at_tpr"] == pytest.approx(fpr_at_tpr(y, conf))
    assert rows[0]["accuracy"] == pytest.approx(y.mean())
    for r in rows:
        assert r["auroc_ci_low"] <= r["auroc"] <= r["auroc_ci_high"]
        assert r["fit_time"] >= 0 and r["predict_time"] >= 0


def test_benchmark_accepts_y_correct(small):
    from vilu_sklearn import correctness

    X_tr, T, y_tr, X_te, y_te = _split(small)
    by_labels = benchmark(
        {"DOCTOR": Doctor()}, X_tr, T, y_tr, X_te, y_te, n_resamples=0, as_frame=False
    )
    by_correct = benchmark(
        {"DOCTOR": Doctor()},
        X_tr,
        T,
        correctness(X_tr, T, y_tr),
        X_te,
        correctness(X_te, T, y_te),
        y_kind="correct",
        n_resamples=0,
        as_frame=False,
    )
    assert by_labels[0]["auroc"] == pytest.approx(by_correct[0]["auroc"])


def test_benchmark_returns_dataframe_when_pandas_installed(small):
    pd = pytest.importorskip("pandas")
    X_tr, T, y_tr, X_te, y_te = _split(small)
    frame = benchmark({"MSP": MSP()}, X_tr, T, y_tr, X_te, y_te, n_resamples=0)
    assert isinstance(frame, pd.DataFrame)
    assert {
        "method",
        "auroc",
        "fpr_at_tpr",
        "aupr_error",
        "aurc",
        "fit_time",
        "predict_time",
    } <= set(frame.columns)
    assert "MSP" in format_table(frame)


def test_benchmark_type_depends_on_as_frame_only(small, monkeypatch):
    """One return type per as_frame value, whatever is installed."""
    X_tr, T, y_tr, X_te, y_te = _split(small)
    args = ({"MSP": MSP()}, X_tr, T, y_tr, X_te, y_te)
    rows = benchmark(*args, n_resamples=0, as_frame=False)
    assert isinstance(rows, list) and rows[0]["method"] == "MSP"
    assert set(rows[0]["_arrays"]) == {"confidence", "y_correct"}
    with pytest.raises(ValueError, match="as_frame must be True or False"):
        benchmark(*args, n_resamples=0, as_frame="auto")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"as_frame=False for a list of dicts"):
        benchmark(*args, n_resamples=0)
    assert isinstance(benchmark(*args, n_resamples=0, as_frame=False), list)


@pytest.mark.slow  # ViLU (default size) and MSP through benchmark, caption mode
def test_benchmark_caption_mode():
    d = make_caption_embeddings(
        600, 32, retrieval_accuracy=0.6, group_size=100, random_state=0
    )
    est = default_estimators(mode="caption", caption_group_size=100, max_epochs=2)
    assert "TrustScore" not in est and "ViLU" in est
    rows = benchmark(
        {k: est[k] for k in ("ViLU", "MSP")},
        d.X_img[:400],
        d.X_txt[:400],
        None,
        d.X_img[400:],
        X_txt_test=d.X_txt[400:],
        mode="caption",
        caption_group_size=100,
        n_resamples=0,
        as_frame=False,
    )
    assert [r["method"] for r in rows] == ["ViLU", "MSP"]
    assert all(0 < r["accuracy"] < 1 for r in rows)


def test_format_table_outputs(small):
    X_tr, T, y_tr, X_te, y_te = _split(small)
    rows = benchmark(
        {"MSP": MSP()}, X_tr, T, y_tr, X_te, y_te, n_resamples=20, as_frame=False
    )
    md = format_table(rows)
    assert md.splitlines()[0].startswith("| Method | Supervision | AUROC ↑ | FPR95 ↓")
    assert f"{100 * rows[0]['auroc']:.1f} [" in md
    parsed = json.loads(format_table(rows, "json"))
    assert parsed[0]["auroc"] == pytest.approx(rows[0]["auroc"])
    csv_lines = format_table(rows, "csv").splitlines()
    assert csv_lines[0].startswith("method,") and len(csv_lines) == 2
    with pytest.raises(ValueError, match="fmt must be"):
        format_table(rows, "html")


def test_benchmark_errors(small):
    X_tr, T, y_tr, X_te, y_te = _split(small)
    with pytest.raises(ValueError, match="X_img_test has 5 features"):
        benchmark({"MSP": MSP()}, X_tr, T, y_tr, X_te[:, :5], y_te)
    with pytest.raises(ValueError, match="y_kind"):
        benchmark({"MSP": MSP()}, X_tr, T, y_tr, X_te, y_te, y_kind="label")


def test_default_estimators_cover_vilu_and_every_baseline():
    from vilu_sklearn import baselines as bl

    estimators = default_estimators()
    # one name per method: the row (and --methods value) is the class name
    vilu = ("ViLU", "ViLU (paper)")
    for name, est in estimators.items():
        expected = "ViLUClassifier" if name in vilu else name
        assert type(est).__name__ == expected
    classes = {getattr(bl, n) for n in bl.__all__ if isinstance(getattr(bl, n), type)}
    assert classes == {type(e) for n, e in estimators.items() if n not in vilu}
    from vilu_sklearn import REFERENCE_PARAMS

    paper = estimators["ViLU (paper)"].get_params()
    assert all(paper[k] == v for k, v in REFERENCE_PARAMS.items())
    # the label-trained probes only when labels are passed
    no_labels = default_estimators(labels=False)
    assert set(estimators) - set(no_labels) == {"LinearProbe", "MLPProbe"}
    assert len(classes) >= 13
    for name, est in default_estimators(logit_scale=42.0).items():
        if name != "MCM":  # MCM's temperature replaces the logit scale
            assert est.get_params()["logit_scale"] == 42.0
    caption = default_estimators(mode="caption")
    assert {"ViLU", "MSP", "MCM", "KNN"} <= set(caption)
    for est in caption.values():
        assert est.get_params()["mode"] == "caption"


def test_methods_are_matched_case_insensitively():
    from vilu_sklearn._cli import _select_methods

    ests = default_estimators()
    chosen = _select_methods(ests, "doctor,TEMPERATURESCALING,trustvlm,vilu")
    assert list(chosen) == ["Doctor", "TemperatureScaling", "TrustVLM", "ViLU"]
    # names of earlier releases still work
    assert list(_select_methods(ests, "TempScaling,Rel-U,DOCTOR")) == [
        "TemperatureScaling",
        "RelU",
        "Doctor",
    ]
    with pytest.raises(ValueError, match="unknown method"):
        _select_methods(ests, "MSP,Foo")


@pytest.mark.slow  # CLI end to end with ViLU (default size); progress test below
def test_cli_on_a_small_npz(tmp_path, small, write_npz, capsys):
    path = write_npz(
        X_img_train=small.X_img[:600],
        y_train=small.labels[:600],
        X_img_test=small.X_img[600:],
        y_test=small.labels[600:],
        X_txt=small.X_txt,
        logit_scale=100.0,
    )
    out_json = tmp_path / "table.json"
    code = main(
        [
            "benchmark",
            "--data",
            str(path),
            "--methods",
            "MSP,Doctor,ViLU",
            "--max-epochs",
            "2",
            "--n-resamples",
            "10",
            "--format",
            "json",
            "--output",
            str(out_json),
            "--quiet",
        ]
    )
    assert code == 0
    rows = json.loads(out_json.read_text())
    assert [r["method"] for r in rows] == ["MSP", "Doctor", "ViLU"]
    assert json.loads(capsys.readouterr().out)[0]["method"] == "MSP"


def test_cli_shows_progress_by_default_and_not_with_quiet(small_npz, capsys):
    """Which method runs, how long it took and ViLU's epochs, all on stderr."""
    argv = ["benchmark", "--data", str(small_npz), "--methods", "MSP,ViLU"]
    argv += ["--max-epochs", "2", "--n-resamples", "0", "--format", "json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert [row["method"] for row in json.loads(out)] == ["MSP", "ViLU"]
    assert "[2/2] ViLU: fitting ..." in err
    assert re.search(r"\[2/2\] ViLU: AUROC [0-9.]+, fit [0-9.]+ s", err)
    assert "train_loss" in err and "epochs" in err  # ViLU's epochs and bar
    assert main([*argv, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[1]["method"] == "ViLU" and err == ""


@pytest.mark.slow  # matplotlib, four figures written as PNG
def test_cli_plots(tmp_path, small_npz):
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    main(
        [
            "benchmark",
            "--data",
            str(small_npz),
            "--methods",
            "MSP,Entropy",
            "--n-resamples",
            "0",
            "--plots",
            str(plots),
            "--quiet",
        ]
    )
    written = sorted(p.name for p in plots.iterdir())
    assert written == [
        "hist_Entropy.png",
        "hist_MSP.png",
        "risk_coverage.png",
        "roc.png",
    ]
    assert all((plots / name).stat().st_size > 1000 for name in written)


def test_cli_errors(small_npz):
    argv = ["benchmark", "--data", str(small_npz), "--methods", "NotAMethod"]
    assert main(argv) == 2


@pytest.mark.slow  # a fresh interpreter imports the package (and torch)
def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "vilu_sklearn", "benchmark", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--data" in out.stdout and "--plots" in out.stdout


@pytest.mark.slow
def test_cli_on_shared_cifar_data(cifar_npz_path, cifar, tmp_path):
    """The documented command on the real embeddings, with a reduced budget."""
    out = tmp_path / "cifar.md"
    code = main(
        [
            "benchmark",
            "--data",
            str(cifar_npz_path),
            "--max-epochs",
            "3",
            "--n-resamples",
            "20",
            "--output",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    text = out.read_text()
    for name in ("ViLU", "LVU", "MSP", "MCM", "Doctor", "RelU", "TrustScore", "ICPE"):
        assert re.search(rf"\| {name}\** \|", text), name  # * marks a note
    for name in ("ViLU (paper)", "LinearProbe", "MLPProbe"):
        assert f"| {name} |" in text
    from vilu_sklearn import correctness

    acc = correctness(cifar["X_img_test"], cifar["X_txt"], cifar["y_test"]).mean()
    assert f"VLM accuracy on the test split: {100 * acc:.1f} %" in text


def test_benchmark_certified_coverage_and_paired_comparison(small):
    from vilu_sklearn import correctness
    from vilu_sklearn.metrics import paired_bootstrap_ci
    from vilu_sklearn.selective import calibrate_threshold

    X_tr, T, y_tr, X_te, y_te = _split(small)
    ests = {"MSP": MSP(), "DOCTOR": Doctor(), "Entropy": Entropy()}
    rows = benchmark(
        ests, X_tr, T, y_tr, X_te, y_te, n_resamples=40, as_frame=False,
        target_risk=0.3, delta=0.2, reference="Entropy",
    )  # fmt: skip
    y = correctness(X_te, T, y_te)
    for r in rows:
        conf = r["_arrays"]["confidence"]
        t = calibrate_threshold(conf, y, target_risk=0.3, delta=0.2)
        assert r["certified_coverage"] == pytest.approx(np.mean(conf >= t))
        assert r["certified_target_risk"] == 0.3 and r["certified_delta"] == 0.2
    ref = rows[2]
    best = max(rows[:2], key=lambda r: r["auroc"])
    assert ref["paired_vs"] == best["method"]
    assert "paired_vs" not in rows[0] and "paired_vs" not in rows[1]
    expected = paired_bootstrap_ci(
        "auroc", y, ref["_arrays"]["confidence"], best["_arrays"]["confidence"],
        n_resamples=40, random_state=0,
    )  # fmt: skip
    assert ref["paired_auroc_diff"] == pytest.approx(expected.estimate)
    assert ref["paired_auroc_diff_ci_low"] == pytest.approx(expected.low)
    assert ref["paired_fpr_at_tpr_diff_ci_low"] <= ref["paired_fpr_at_tpr_diff"]
    text = format_table(rows)
    assert "Cov@30%✓ (δ=0.2) ↑" in text
    assert f"Entropy (none) − {best['method']} (none; the best by AUROC" in text
    # the reference row is last: CSV still has its extra columns
    header = format_table(rows, "csv").splitlines()[0].split(",")
    assert "paired_auroc_diff_ci_high" in header
    parsed = json.loads(format_table(rows, "json"))  # strict JSON, no Infinity
    assert parsed[2]["paired_vs"] == best["method"]


def test_cli_target_risk_and_delta(small, write_npz, capsys):
    path = write_npz(
        X_img=small.X_img, y=small.labels, X_txt=small.X_txt, logit_scale=50.0
    )
    args = ["benchmark", "--data", str(path), "--methods", "MSP,DOCTOR", "--quiet"]
    main([*args, "--n-resamples", "10", "--target-risk", "0.25", "--delta", "0.2"])
    out = capsys.readouterr().out
    assert "Cov@25%✓ (δ=0.2) ↑" in out and "selective risk <= 0.25" in out
    with pytest.raises(SystemExit):
        main([*args, "--target-risk", "1.5"])
    assert "expected a number in (0, 1)" in capsys.readouterr().err


class _LabelSpy(MSP):
    """MSP whose fit records the class labels it is given (benchmark clones it)."""

    seen: list = []

    def fit(self, X, y=None, y_correct=None, *, sample_weight=None, labels=None):
        _LabelSpy.seen.append(None if labels is None else np.asarray(labels))
        return super().fit(X, y, y_correct, sample_weight=sample_weight)


@pytest.mark.parametrize("fit_labels", [True, False])
def test_benchmark_passes_class_labels_to_estimators_that_take_them(small, fit_labels):
    X_tr, T, y_tr, X_te, y_te = _split(small)
    _LabelSpy.seen.clear()
    benchmark(
        {"spy": _LabelSpy(), "MSP": MSP()},
        X_tr, T, y_tr, X_te, y_te,
        n_resamples=0, as_frame=False, fit_labels=fit_labels,
    )  # fmt: skip
    (seen,) = _LabelSpy.seen  # MSP's own fit takes no labels: it got none
    if fit_labels:
        np.testing.assert_array_equal(seen, y_tr)
    else:
        assert seen is None
    # data given as y_correct carry no labels: nothing is passed
    _LabelSpy.seen.clear()
    y_corr = np.ones(len(X_tr), dtype=int)
    y_corr[:100] = 0
    y_corr_test = np.r_[0, np.ones(len(X_te) - 1, int)]
    benchmark(
        {"spy": _LabelSpy()}, X_tr, T, y_corr, X_te, y_corr_test,
        y_kind="correct", n_resamples=0, as_frame=False, reference=None,
    )  # fmt: skip
    assert _LabelSpy.seen == [None]


@pytest.mark.parametrize(
    ("flags", "said"),
    [([], "ViLU was also given the training class labels"),
     (["--no-labels"], "ViLU was trained on y_correct only (--no-labels)")],
)  # fmt: skip
def test_cli_says_whether_vilu_got_the_class_labels(
    tmp_path, small, capsys, flags, said
):
    path = tmp_path / "emb.npz"
    np.savez(path, X_img=small.X_img, y=small.labels, X_txt=small.X_txt)
    argv = ["benchmark", "--data", str(path), "--quiet", "--n-resamples", "0"]
    assert main([*argv, "--methods", "ViLU,MSP", "--max-epochs", "1", *flags]) == 0
    assert said in capsys.readouterr().out
    # issue 18, defect 20: without ViLU among --methods, no sentence about it
    assert main([*argv, "--methods", "MSP", *flags]) == 0
    out = capsys.readouterr().out
    assert "ViLU" not in out and "class labels" not in out


# --------------------------------------------- issue 18: defects 17, 21, 22
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fit_labels": "no"}, "fit_labels must be True or False; got 'no'"),
        ({"normalize": "False"}, "normalize must be True or False"),
        ({"target_risk": 1.5}, r"target_risk must be a number in \[0, 1\); got 1.5"),
        ({"delta": 0}, r"delta must be a number in \(0, 1\)"),
        ({"confidence_level": 95}, "confidence_level must be"),
        ({"n_resamples": -1}, "n_resamples must be an integer >= 0"),
        ({"reference": "Nope"}, "reference must be one of .*MSP, Spy.*'Nope'"),
    ],
)
def test_benchmark_options_are_checked_before_any_fit(small, kwargs, match):
    # issue 18, defects 17 and 21: fit_labels="no" acted as True; a bad
    # target_risk was refused only after the first fit; an unknown reference
    # silently dropped the paired comparison
    X_tr, T, y_tr, X_te, y_te = _split(small)
    _LabelSpy.seen.clear()
    with pytest.raises(ValueError, match=match):
        benchmark(
            {"MSP": MSP(), "Spy": _LabelSpy()}, X_tr, T, y_tr, X_te, y_te,
            **{"n_resamples": 0, "as_frame": False, **kwargs},
        )  # fmt: skip
    assert _LabelSpy.seen == []  # nothing was fitted


def test_benchmark_reference_auto_is_vilu_when_it_runs(small):
    X_tr, T, y_tr, X_te, y_te = _split(small)
    rows = benchmark(
        {"MSP": MSP(), "Doctor": Doctor()}, X_tr, T, y_tr, X_te, y_te,
        n_resamples=0, as_frame=False,
    )  # fmt: skip
    assert not any("paired_vs" in r for r in rows)  # no ViLU: no comparison
    rows = benchmark(
        {"MSP": MSP(), "Doctor": Doctor()}, X_tr, T, y_tr, X_te, y_te,
        n_resamples=0, as_frame=False, reference="Doctor",
    )  # fmt: skip
    assert rows[1]["paired_vs"] == "MSP"


def test_benchmark_warns_when_labels_look_like_correctness(small):
    # issue 18, defect 22: y_kind="labels" given 0/1 correctness reported a
    # VLM accuracy of 0.126 instead of 0.674, silently
    from vilu_sklearn import correctness

    X_tr, T, y_tr, X_te, y_te = _split(small)
    c_tr, c_te = correctness(X_tr, T, y_tr), correctness(X_te, T, y_te)
    with pytest.warns(UserWarning, match="look like 0/1 correctness.*y_kind='correct'"):
        benchmark(
            {"MSP": MSP()}, X_tr, T, c_tr, X_te, c_te,
            n_resamples=0, as_frame=False,
        )  # fmt: skip
    # true labels of two of the 8 classes: no warning
    import warnings

    keep_tr, keep_te = y_tr <= 1, y_te <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        benchmark(
            {"MSP": MSP()}, X_tr[keep_tr], T, y_tr[keep_tr], X_te[keep_te],
            y_te[keep_te], n_resamples=0, as_frame=False,
        )  # fmt: skip
