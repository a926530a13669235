"""Supervision of the benchmark rows and the unseen-classes protocol."""

from __future__ import annotations

import csv
import io
import json
import warnings

import numpy as np
import pytest

from vilu_sklearn import UnseenCandidatesWarning, benchmark, correctness, format_table
from vilu_sklearn import baselines as bl
from vilu_sklearn._cli import main
from vilu_sklearn._protocols import (
    class_splits,
    supervision,
    unseen_capability,
)
from vilu_sklearn.datasets import make_vlm_embeddings


@pytest.fixture(scope="module")
def data():
    return make_vlm_embeddings(1000, 6, 24, accuracy=0.7, random_state=0)


def _split(d, n_train=600):
    return (
        d.X_img[:n_train],
        d.X_txt,
        d.labels[:n_train],
        d.X_img[n_train:],
        d.labels[n_train:],
    )


class _Spy(bl.MSP):
    """MSP that records what fit and decision_function were given."""

    calls: list = []

    def fit(self, X, y=None, y_correct=None, *, sample_weight=None):
        _Spy.calls.append(("fit", np.asarray(X), np.asarray(y), np.asarray(y_correct)))
        return super().fit(X, y, y_correct, sample_weight=sample_weight)

    def decision_function(self, X, X_txt=None):
        _Spy.calls.append(("predict", np.asarray(X), np.asarray(X_txt)))
        return super().decision_function(X, X_txt)


class _RelUSpy(bl.RelU):
    fitted = 0

    def fit(self, *args, **kwargs):
        _RelUSpy.fitted += 1
        return super().fit(*args, **kwargs)


# ----------------------------------------------------------------- class splits
def test_class_splits_are_seeded_partitions():
    splits = class_splits(10, 0.5, 5, random_state=3)
    assert len(splits) == 5
    for seen, unseen in splits:
        assert len(unseen) == 5 and len(seen) == 5
        assert sorted(np.r_[seen, unseen].tolist()) == list(range(10))
        assert np.all(np.diff(seen) > 0) and np.all(np.diff(unseen) > 0)
    again = class_splits(10, 0.5, 5, random_state=3)
    for (s1, u1), (s2, u2) in zip(splits, again, strict=True):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(u1, u2)
    assert len({tuple(u) for _, u in splits}) > 1  # the splits differ
    other = class_splits(10, 0.5, 5, random_state=4)
    assert any(
        not np.array_equal(a[1], b[1]) for a, b in zip(splits, other, strict=True)
    )
    assert len(class_splits(10, 0.3, 1, 0)[0][1]) == 3
    with pytest.raises(ValueError, match="both need at least 2"):
        class_splits(3, 0.5, 1, 0)


# ----------------------------------------------------- what fit and predict get
def test_unseen_protocol_fits_on_seen_classes_with_seen_prompts(data):
    X_tr, T, y_tr, X_te, y_te = _split(data)
    _Spy.calls.clear()
    rows = benchmark(
        {"spy": _Spy(logit_scale=data.logit_scale)},
        X_tr, T, y_tr, X_te, y_te,
        protocol="unseen-classes", n_class_splits=2, unseen_fraction=0.5,
        n_resamples=0, as_frame=False, reference=None,
    )  # fmt: skip
    splits = class_splits(len(T), 0.5, 2, random_state=0)
    fits = [c for c in _Spy.calls if c[0] == "fit"]
    predicts = [c for c in _Spy.calls if c[0] == "predict"]
    assert len(fits) == 2 and len(predicts) == 4
    for s, (seen, unseen) in enumerate(splits):
        _, X_fit, texts, y_fit = fits[s]
        rows_seen = np.isin(y_tr, seen)
        np.testing.assert_array_equal(X_fit, X_tr[rows_seen])  # seen rows only
        np.testing.assert_array_equal(texts, T[seen])  # the seen prompts
        remap = np.searchsorted(seen, y_tr[rows_seen])
        np.testing.assert_array_equal(y_fit, correctness(X_fit, T[seen], remap))
        _, X_u, T_u = predicts[2 * s]
        np.testing.assert_array_equal(X_u, X_te[np.isin(y_te, unseen)])
        np.testing.assert_array_equal(T_u, T[unseen])
        _, X_all, T_all = predicts[2 * s + 1]
        np.testing.assert_array_equal(X_all, X_te)
        np.testing.assert_array_equal(T_all, T)
        # y_correct of the unseen variant: against the unseen prompts only
        y_u = correctness(
            X_u, T[unseen], np.searchsorted(unseen, y_te[np.isin(y_te, unseen)])
        )
        assert rows[0]["per_split"][s]["accuracy"] == pytest.approx(y_u.mean())
        assert rows[0]["per_split"][s]["unseen"] == unseen.tolist()
    assert [r["variant"] for r in rows] == ["unseen", "all"]
    assert rows[0]["auroc"] == pytest.approx(
        np.mean([p["auroc"] for p in rows[0]["per_split"]])
    )


def test_not_applicable_methods_are_excluded_and_labelled(data):
    X_tr, T, y_tr, X_te, y_te = _split(data)
    _RelUSpy.fitted = 0
    rows = benchmark(
        {"MSP": bl.MSP(), "RelU": _RelUSpy(), "LinearProbe": bl.LinearProbe(),
         "TemperatureScaling": bl.TemperatureScaling()},
        X_tr, T, y_tr, X_te, y_te, protocol="unseen-classes", n_class_splits=2,
        n_resamples=20, as_frame=False, reference="TemperatureScaling",
    )  # fmt: skip
    assert _RelUSpy.fitted == 0  # never fitted, never scored
    by = {(r["variant"], r["method"]): r for r in rows}
    for v in ("unseen", "all"):
        for name in ("RelU", "LinearProbe"):
            row = by[v, name]
            assert row["applicable"] is False and "not applicable" in row["note"]
            assert "auroc" not in row
        msp = by[v, "MSP"]
        assert msp["applicable"] and msp["reference"] == "TemperatureScaling"
        assert msp["auroc_ci_low"] <= msp["auroc"] <= msp["auroc_ci_high"]
        assert msp["ref_auroc_diff_ci_low"] <= msp["ref_auroc_diff"]
        assert msp["ref_auroc_diff"] == pytest.approx(
            by[v, "TemperatureScaling"]["auroc"] - msp["auroc"]
        )
    assert by["unseen", "LinearProbe"]["supervision"] == "labels"
    md = format_table(rows)
    assert "| RelU | y_correct | n/a |" in md
    assert "RelU: not applicable" in md
    assert "ΔAUROC TemperatureScaling − method" in md


@pytest.mark.parametrize("cls", [getattr(bl, n) for n in bl.__all__ if n != "make_lvu"])
def test_declared_unseen_capability_matches_behaviour(cls, data):
    """ "ok" methods score a candidate set unseen in fit; "n/a" ones refuse it."""
    est = cls()
    cap = unseen_capability(est)
    params = est.get_params()
    cheap = dict(max_epochs=1, hidden_size=8, hidden_layer_sizes=(8,), n_components=4)
    small = {k: v for k, v in cheap.items() if k in params}
    if cls is bl.RelU:
        small.update(temperature=1.0, lbd=0.5)
    est.set_params(**small)
    X, T, y = data.X_img, data.X_txt, data.y_correct
    seen, unseen = [0, 1, 2], [3, 4, 5]
    kwargs = (
        {"labels": np.zeros(len(X), dtype=int)}
        if cls in (bl.LinearProbe, bl.MLPProbe)
        else {}
    )
    est.fit(
        X,
        T[seen],
        correctness(X, T[seen], np.zeros(len(X), int)) if kwargs else y,
        **kwargs,
    )
    if cap == "ok":
        assert est.decision_function(X[:20], T[unseen]).shape == (20,)
    else:
        assert cap == "n/a"
        with pytest.raises(ValueError, match="candidate"):
            est.decision_function(X[:20], T[unseen])


# ------------------------------------------------------------------- supervision
def test_supervision_levels():
    from vilu_sklearn import REFERENCE_PARAMS, ViLUClassifier

    assert supervision(bl.Doctor(), True) == "none"
    assert supervision(bl.KNN(), True) == "none"
    assert supervision(bl.KNN(reference="correct"), True) == "y_correct"
    assert supervision(bl.ICPE(), True) == "y_correct"
    assert supervision(bl.MLPProbe(), True) == "labels"
    assert supervision(ViLUClassifier(), True) == "labels"
    assert supervision(ViLUClassifier(), False) == "y_correct"
    assert supervision(ViLUClassifier(**REFERENCE_PARAMS), True) == "y_correct"


def test_supervision_column_in_every_format(data):
    pd = pytest.importorskip("pandas")
    X_tr, T, y_tr, X_te, y_te = _split(data)
    ests = {"MSP": bl.MSP(), "TemperatureScaling": bl.TemperatureScaling(),
            "LinearProbe": bl.LinearProbe()}  # fmt: skip
    for protocol in ("fixed", "unseen-classes"):
        kw = dict(protocol=protocol, n_class_splits=2, n_resamples=10, reference="MSP")
        rows = benchmark(ests, X_tr, T, y_tr, X_te, y_te, as_frame=False, **kw)
        frame = benchmark(ests, X_tr, T, y_tr, X_te, y_te, as_frame=True, **kw)
        assert "supervision" in frame.columns
        assert isinstance(frame, pd.DataFrame)
        for table in (rows, frame):
            assert "| Supervision |" in format_table(table).replace(
                "| Method | Supervision |", "| Supervision |"
            )
            parsed = json.loads(format_table(table, "json"))
            assert [r["supervision"] for r in parsed][:3] == [
                "none",
                "y_correct",
                "labels",
            ]
            records = list(csv.DictReader(io.StringIO(format_table(table, "csv"))))
            assert records[2]["supervision"] == "labels"
    if True:  # per-split numbers survive the CSV as JSON text
        per_split = json.loads(records[0]["per_split"])
        assert len(per_split) == 2 and "auroc" in per_split[0]


def test_label_probes_without_labels_get_a_not_applicable_row(data):
    X_tr, T, y_tr, X_te, y_te = _split(data)
    rows = benchmark(
        {"MSP": bl.MSP(), "MLPProbe": bl.MLPProbe()},
        X_tr, T, y_tr, X_te, y_te, fit_labels=False, n_resamples=0, as_frame=False,
    )  # fmt: skip
    assert rows[1]["applicable"] is False and "class labels" in rows[1]["note"]
    md = format_table(rows)
    assert "| MLPProbe* | labels | n/a |" in md and "MLPProbe*: not applicable" in md
    assert rows[1]["_arrays"] == {}
    pytest.importorskip("pandas")
    frame = benchmark(
        {"MSP": bl.MSP(), "MLPProbe": bl.MLPProbe()},
        X_tr, T, y_tr, X_te, y_te, fit_labels=False, n_resamples=0,
    )  # fmt: skip
    assert list(frame.attrs["arrays"]) == ["MSP"]  # the plots' arrays


def test_paired_comparison_respects_supervision(data):
    """A y_correct method is not compared with a label probe, which saw more."""
    X_tr, T, y_tr, X_te, y_te = _split(data)
    rows = benchmark(
        {"TemperatureScaling": bl.TemperatureScaling(logit_scale=data.logit_scale),
         "MSP": bl.MSP(logit_scale=data.logit_scale),
         "LinearProbe": bl.LinearProbe(logit_scale=data.logit_scale)},
        X_tr, T, y_tr, X_te, y_te, n_resamples=20, as_frame=False,
        reference="TemperatureScaling",
    )  # fmt: skip
    ref = rows[0]
    assert rows[2]["auroc"] > max(rows[0]["auroc"], rows[1]["auroc"])  # the probe leads
    assert ref["paired_vs"] == "MSP" and ref["paired_vs_supervision"] == "none"
    assert ref["paired_probe_vs"] == "LinearProbe"
    assert ref["paired_probe_auroc_diff"] == pytest.approx(
        ref["auroc"] - rows[2]["auroc"]
    )
    md = format_table(rows)
    assert "− MSP (none; the best by AUROC of the methods with the same or less" in md
    assert "− LinearProbe (the best label-trained probe" in md


def test_relu_row_says_when_it_is_doctors_ranking(data):
    X_tr, T, y_tr, X_te, y_te = _split(data)
    rows = benchmark(
        {"RelU": bl.RelU(lbd=0.0, temperature=1.0), "MSP": bl.MSP()},
        X_tr, T, y_tr, X_te, y_te, n_resamples=0, as_frame=False, reference=None,
    )  # fmt: skip
    assert "Gini fallback" in rows[0]["note"] and "note" not in rows[1]
    assert "RelU*: validation chose" in format_table(rows)


def test_cli_unseen_classes(tmp_path, data, capsys):
    path = tmp_path / "emb.npz"
    np.savez(path, X_img=data.X_img, y=data.labels, X_txt=data.X_txt)
    argv = ["benchmark", "--data", str(path), "--methods", "MSP,Doctor,RelU",
            "--unseen-classes", "0.5", "--class-splits", "2", "--quiet",
            "--n-resamples", "10"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Failure prediction on classes unseen in training" in out
    assert "| RelU | y_correct | n/a |" in out and out.count("| MSP | none |") == 2
    assert main(argv[:7] + ["--class-splits", "0"]) == 2
    assert "--class-splits must be >= 1" in capsys.readouterr().err
    assert main(argv + ["--mode", "caption"]) == 2
    assert main(argv + ["--plots", str(tmp_path / "plots")]) == 2
    assert "leave out --plots" in capsys.readouterr().err


@pytest.mark.slow
def test_unseen_classes_on_the_shared_cifar_data(cifar):
    """Five 5/5 class splits of CIFAR-10, cheap methods, ViLU with 2 epochs."""
    from vilu_sklearn import ViLUClassifier

    s = float(cifar["logit_scale"])
    rows = benchmark(
        {"ViLU": ViLUClassifier(logit_scale=s, max_epochs=2, random_state=0),
         "MSP": bl.MSP(logit_scale=s), "TrustScore": bl.TrustScore(logit_scale=s)},
        cifar["X_img_train"], cifar["X_txt"], cifar["y_train"],
        cifar["X_img_test"], cifar["y_test"], protocol="unseen-classes",
        n_resamples=20, as_frame=False,
    )  # fmt: skip
    by = {(r["variant"], r["method"]): r for r in rows}
    assert len(by["unseen", "MSP"]["per_split"]) == 5
    for split in by["unseen", "MSP"]["per_split"]:
        assert len(split["unseen"]) == 5 and split["n_test"] == 5000
        assert 0.6 < split["auroc"] < 0.95
    assert by["all", "MSP"]["auroc"] == pytest.approx(
        by["all", "MSP"]["per_split"][0]["auroc"]
    )
    assert by["unseen", "TrustScore"]["applicable"] is False
    assert by["unseen", "MSP"]["reference"] == "ViLU"


def test_vilu_rows_say_which_part_scores_unseen_classes(data):
    from vilu_sklearn import REFERENCE_PARAMS, ViLUClassifier

    small = dict(max_epochs=2, hidden_layer_sizes=(8,), posterior_hidden_size=8)
    est = {
        "ViLU": ViLUClassifier(random_state=0, **small),
        "ViLU (paper)": ViLUClassifier(**{**REFERENCE_PARAMS, **small}),
        "MSP": bl.MSP(),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenCandidatesWarning)  # noted, not warned
        rows = benchmark(
            est, *_split(data), n_resamples=0, as_frame=False,
            protocol="unseen-classes", unseen_fraction=0.5, n_class_splits=2,
        )  # fmt: skip
    by = {(r["method"], r["variant"]): r for r in rows}
    assert "learned temperature" in by["ViLU", "unseen"]["note"]
    assert by["ViLU (paper)", "unseen"]["unseen_classes"] == "ok"
    assert "note" not in by["ViLU (paper)", "unseen"]
    # the fallback ranks as MSP does when the learned temperature is kept
    assert abs(by["ViLU", "unseen"]["auroc"] - by["MSP", "unseen"]["auroc"]) < 0.02
