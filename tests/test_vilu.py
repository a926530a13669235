"""ViLUClassifier: call forms, sklearn integration, training, caption mode, errors."""

from __future__ import annotations

import pickle
import re
import warnings

import joblib
import numpy as np
import pytest
import torch
from _helpers import make_toy
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from vilu_sklearn import (
    ViLUClassifier,
    caption_correctness,
    correctness,
    l2_normalize,
    zero_shot_predict,
)
from vilu_sklearn import _net as net_mod
from vilu_sklearn._modules import ViLUModule, failure_weight, weighted_bce_loss

# fast configuration: AdamW without warm-up converges in a few epochs on toy data
FAST = dict(
    hidden_layer_sizes=(32,),
    max_epochs=8,
    optimizer="adamw",
    lr=5e-3,
    warmup_epochs=0,
    random_state=0,
)


@pytest.fixture(scope="module")
def toy():
    return make_toy()


@pytest.fixture(scope="module")
def fitted(toy):
    X_img, X_txt, _, y = toy
    return ViLUClassifier(**FAST).fit(X_img, X_txt, y)


# ---------------------------------------------------------------- call forms
def test_three_argument_and_text_embeddings_forms_agree(toy, fitted):
    X_img, X_txt, _, y = toy
    other = ViLUClassifier(text_embeddings=X_txt, **FAST).fit(X_img, y)
    np.testing.assert_allclose(
        other.decision_function(X_img), fitted.decision_function(X_img, X_txt)
    )
    # X_txt optional once fitted: defaults to the texts seen in fit
    np.testing.assert_allclose(
        fitted.decision_function(X_img), fitted.decision_function(X_img, X_txt)
    )


def test_prediction_outputs(toy, fitted):
    X_img, X_txt, _, y = toy
    proba = fitted.predict_proba(X_img, X_txt)
    logit = fitted.decision_function(X_img, X_txt)
    assert proba.shape == (len(X_img), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-logit)))
    np.testing.assert_array_equal(fitted.classes_, [0, 1])
    np.testing.assert_array_equal(fitted.predict(X_img, X_txt), (logit > 0) * 1)
    assert fitted.n_features_in_ == X_img.shape[1]
    assert fitted.text_embeddings_.shape == X_txt.shape
    # the learned confidence is informative on its own training data
    assert roc_auc_score(y, logit) > 0.6
    assert fitted.score(X_img, y) == pytest.approx(roc_auc_score(y, logit))


def test_learns_better_than_chance_on_held_out_data():
    X_img, X_txt, labels, y = make_toy(n=1500, seed=1)
    clf = ViLUClassifier(**{**FAST, "max_epochs": 20}).fit(
        X_img[:1000], X_txt, y[:1000]
    )
    assert roc_auc_score(y[1000:], clf.decision_function(X_img[1000:], X_txt)) > 0.6


def test_different_candidate_texts_at_prediction(toy, fitted):
    X_img, X_txt, _, _ = toy
    other = X_txt + np.random.default_rng(4).normal(scale=0.5, size=X_txt.shape)
    more = np.vstack([X_txt, np.random.default_rng(5).normal(size=(3, X_txt.shape[1]))])
    try:
        fitted.set_params(unseen_candidates="model")  # the whole model on new texts
        a = fitted.decision_function(X_img[:20], other)
        assert not np.allclose(a, fitted.decision_function(X_img[:20], X_txt))
        assert fitted.decision_function(X_img[:20], more).shape == (20,)
    finally:
        fitted.set_params(unseen_candidates="fallback")


def test_candidate_order_invariance(toy, fitted):
    X_img, X_txt, _, _ = toy
    perm = np.random.default_rng(0).permutation(len(X_txt))
    np.testing.assert_allclose(
        fitted.decision_function(X_img, X_txt[perm]),
        fitted.decision_function(X_img, X_txt),
        rtol=1e-5,
        atol=1e-5,
    )


# ------------------------------------------------------ scikit-learn contract
def test_grid_search_cross_val_pipeline_clone(toy):
    X_img, X_txt, _, y = toy
    est = ViLUClassifier(text_embeddings=X_txt, **{**FAST, "max_epochs": 3})
    grid = GridSearchCV(est, {"lr": [1e-3, 5e-3]}, cv=2, scoring="roc_auc").fit(
        X_img, y
    )
    assert set(grid.cv_results_["param_lr"]) == {1e-3, 5e-3}
    scores = cross_val_score(est, X_img, y, cv=3, scoring="roc_auc")
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    pipe = make_pipeline(FunctionTransformer(l2_normalize), clone(est)).fit(X_img, y)
    assert pipe.predict_proba(X_img).shape == (len(X_img), 2)
    cloned = clone(est)
    assert cloned.get_params()["text_embeddings"] is X_txt or np.array_equal(
        cloned.get_params()["text_embeddings"], X_txt
    )
    assert not hasattr(cloned, "net_")


def test_text_matrix_never_sliced_by_cross_validation():
    # K equals the number of samples: a routed (n, d)-looking matrix would be cut
    X_img, _, _, _ = make_toy(n=60, K=3, seed=3)
    rng = np.random.default_rng(3)
    X_txt = rng.normal(size=(60, X_img.shape[1]))
    y = correctness(X_img, X_txt, rng.integers(0, 60, size=60))
    y[:5] = 1
    y[5:10] = 0
    est = ViLUClassifier(text_embeddings=X_txt, **{**FAST, "max_epochs": 1})
    res = cross_validate(est, X_img, y, cv=2, return_estimator=True)
    for fitted_est in res["estimator"]:
        assert fitted_est.text_embeddings_.shape == (60, X_img.shape[1])


def test_joblib_round_trip_identical(toy, fitted, tmp_path):
    X_img, X_txt, _, _ = toy
    path = tmp_path / "vilu.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(
        loaded.decision_function(X_img, X_txt), fitted.decision_function(X_img, X_txt)
    )
    np.testing.assert_array_equal(
        loaded.decision_function(X_img), fitted.decision_function(X_img)
    )


def test_model_trained_on_cuda_loads_on_cpu_machine(toy):
    """The CUDA -> CPU mechanism: a pickle that records device 'cuda' loads here."""
    X_img, X_txt, _, y = toy
    clf = ViLUClassifier(**{**FAST, "max_epochs": 1}, device="cpu").fit(X_img, X_txt, y)
    expected = clf.decision_function(X_img, X_txt)
    clf.net_.device = "cuda"  # what a GPU-trained model records
    clf.device = "cuda"
    blob = pickle.dumps(clf)
    if torch.cuda.is_available():  # the CPU path is the point
        pytest.skip("needs a machine without CUDA")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        loaded = pickle.loads(blob)
    assert str(loaded.net_.device) == "cpu"
    np.testing.assert_array_equal(loaded.decision_function(X_img, X_txt), expected)


def test_random_state_reproducible_and_global_rng_untouched(toy):
    X_img, X_txt, _, y = toy
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002
    a = ViLUClassifier(**{**FAST, "max_epochs": 2}).fit(X_img, X_txt, y)
    b = ViLUClassifier(**{**FAST, "max_epochs": 2}).fit(X_img, X_txt, y)
    np.testing.assert_array_equal(
        a.decision_function(X_img, X_txt), b.decision_function(X_img, X_txt)
    )
    assert torch.equal(torch_state, torch.get_rng_state())
    np.testing.assert_array_equal(np_state, np.random.get_state()[1])  # noqa: NPY002
    c = ViLUClassifier(**{**FAST, "max_epochs": 2, "random_state": 1}).fit(
        X_img, X_txt, y
    )
    assert not np.allclose(
        a.decision_function(X_img, X_txt), c.decision_function(X_img, X_txt)
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_input_dtypes_accepted(toy, dtype):
    X_img, X_txt, _, y = toy
    clf = ViLUClassifier(**{**FAST, "max_epochs": 1}).fit(
        X_img.astype(dtype), X_txt.astype(dtype), y
    )
    out = clf.decision_function(X_img.astype(dtype), X_txt.astype(dtype))
    assert out.dtype == np.float64 and np.all(np.isfinite(out))


def test_normalisation_inside(toy, fitted):
    X_img, X_txt, _, _ = toy
    np.testing.assert_allclose(
        fitted.decision_function(3.0 * X_img, 0.5 * X_txt),
        fitted.decision_function(X_img, X_txt),
        rtol=1e-4,
        atol=1e-5,
    )


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("metric", ["loss", "auroc"])
def test_early_stopping_restores_best_epoch(toy, metric):
    X_img, X_txt, _, y = toy
    clf = ViLUClassifier(
        **{**FAST, "max_epochs": 40, "lr": 3e-2, "n_iter_no_change": 3},
        early_stopping=True,
        early_stopping_metric=metric,
        tol=0.0,
    ).fit(X_img, X_txt, y)
    key = "valid_loss" if metric == "loss" else "valid_auroc"
    scores = np.array([row[key] for row in clf.history_])
    best = np.argmin(scores) if metric == "loss" else np.argmax(scores)
    assert clf.n_epochs_ < 40  # stopped early
    assert clf.best_epoch_ == int(best) + 1
    assert clf.n_epochs_ - clf.best_epoch_ == 3
    # the kept weights are those of the best epoch: re-scoring the validation
    # part is not possible from outside, but the restored model differs from
    # the last epoch's unless the best epoch was the last
    assert clf.best_epoch_ < clf.n_epochs_


def test_valid_auroc_matches_sklearn_on_the_validation_split(toy):
    from vilu_sklearn._data import EmbeddingDataset, IndexSplit

    X_img, X_txt, _, y = toy
    clf = ViLUClassifier(**{**FAST, "max_epochs": 1, "early_stopping": True})
    clf.fit(X_img, X_txt, y)
    seed = int(np.random.RandomState(0).randint(np.iinfo(np.int32).max))
    _, valid = IndexSplit(0.1, seed)(EmbeddingDataset(X_img, y=y))
    rows = valid.indices
    expected = roc_auc_score(y[rows], clf.decision_function(X_img[rows], X_txt))
    assert clf.history_[-1]["valid_auroc"] == pytest.approx(expected, abs=1e-6)


def test_no_early_stopping_runs_all_epochs(toy):
    X_img, X_txt, _, y = toy
    clf = ViLUClassifier(**{**FAST, "max_epochs": 4, "early_stopping": False}).fit(
        X_img, X_txt, y
    )
    assert clf.n_epochs_ == 4 and "valid_loss" not in clf.history_[-1]


def test_verbose_prints_one_line_per_epoch(toy, capsys):
    X_img, X_txt, _, y = toy
    params = {**FAST, "max_epochs": 3, "verbose": 1, "early_stopping": True}
    ViLUClassifier(**params).fit(X_img, X_txt, y)
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_loss" in out
    assert (
        sum(line.strip().startswith(("1 ", "2 ", "3 ")) for line in out.splitlines())
        == 3
    )


def test_verbose_progress_bar_shows_loss_and_valid_auroc(toy, capsys):
    pytest.importorskip("tqdm")
    X_img, X_txt, _, y = toy
    params = {**FAST, "max_epochs": 3, "verbose": 1, "early_stopping": True}
    clf = ViLUClassifier(**params).fit(X_img, X_txt, y)
    err = capsys.readouterr().err
    assert "epochs" in err and "3/3" in err
    assert re.search(r"train_loss=[0-9.]+, valid_loss=[0-9.]+, valid_auroc=", err)
    bar = dict(clf.net_.callbacks_)["progress_bar"]
    assert bar.bar_ is None  # nothing left open: the model pickles
    pickle.loads(pickle.dumps(clf))


def test_verbose_without_tqdm_falls_back_to_epoch_lines(toy, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if not installed
    X_img, X_txt, _, y = toy
    params = {**FAST, "max_epochs": 2, "verbose": 1, "early_stopping": True}
    clf = ViLUClassifier(**params).fit(X_img, X_txt, y)
    out, err = capsys.readouterr()
    assert "progress_bar" not in dict(clf.net_.callbacks_)
    assert "valid_auroc" in out and "train_loss" in out and "epochs" not in err


def test_silent_by_default(toy, capsys):
    X_img, X_txt, _, y = toy
    ViLUClassifier(**{**FAST, "max_epochs": 2}).fit(X_img, X_txt, y)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_optimizers_and_schedules(toy, optimizer):
    X_img, X_txt, _, y = toy
    params = {**FAST, "max_epochs": 4, "optimizer": optimizer, "warmup_epochs": 2}
    clf = ViLUClassifier(**params, lr_schedule="cosine").fit(X_img, X_txt, y)
    assert clf.n_epochs_ == 4
    opt = clf.net_.optimizer_
    assert type(opt).__name__.lower() == optimizer
    # linear warm-up over 2 epochs, then cosine over the remaining 2, stepped once
    # per epoch: after the last epoch the factor is the cosine's end value
    lr = opt.param_groups[0]["lr"]
    span = params["max_epochs"] - 2
    expected = FAST["lr"] * 0.5 * (1 + np.cos(np.pi * min(4 - 2, span) / span))
    assert lr == pytest.approx(expected)


def test_sample_weight_changes_the_fit(toy):
    X_img, X_txt, _, y = toy
    # a fixed failure weight: the adaptive one would rebalance the weighted
    # accuracy (it takes sample_weight into account) and offset the up-weighting;
    # batches of 64 give the optimiser enough (full) steps in two epochs
    params = {**FAST, "max_epochs": 2, "failure_weight": None, "batch_size": 64}
    base = ViLUClassifier(**params).fit(X_img, X_txt, y)
    w = np.where(y == 0, 5.0, 1.0)
    weighted = ViLUClassifier(**params).fit(X_img, X_txt, y, sample_weight=w)
    # up-weighting failures lowers the confidence on average
    assert (
        weighted.decision_function(X_img, X_txt).mean()
        < base.decision_function(X_img, X_txt).mean()
    )


# ---------------------------------------------------------------- the module
def test_frozen_reference_attention_is_clip_weighted_text_mean():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(4, 8)), rng.normal(size=(6, 8))
    module = ViLUModule(8, keep_frozen=True, logit_scale=50.0, hidden_layer_sizes=(4,))
    enc = module.encode_candidates(torch.tensor(txt))
    z_v = torch.nn.functional.normalize(torch.tensor(img), dim=-1)
    sims = z_v @ enc.texts.T
    got = module._attend(z_v, enc, sims).numpy()
    _, p = zero_shot_predict(img, txt, logit_scale=50.0)
    np.testing.assert_allclose(got, p @ l2_normalize(txt), rtol=1e-6, atol=1e-8)


def test_identity_initialised_reference_equals_frozen_at_start():
    torch.manual_seed(0)
    img, txt = (
        torch.randn(5, 8, dtype=torch.float64),
        torch.randn(3, 8, dtype=torch.float64),
    )
    learned = ViLUModule(8, hidden_layer_sizes=(4,)).double()
    frozen = ViLUModule(8, keep_frozen=True, hidden_layer_sizes=(4,)).double()
    frozen.load_state_dict(learned.state_dict())
    torch.testing.assert_close(learned(img, txt), frozen(img, txt))


@pytest.mark.parametrize(
    "use_attention, use_predicted_text, width",
    [(True, True, 3), (True, False, 2), (False, True, 2), (False, False, 1)],
)
def test_feature_switches(use_attention, use_predicted_text, width):
    module = ViLUModule(
        8, use_attention=use_attention, use_predicted_text=use_predicted_text
    )
    assert module.mlp[0].in_features == 8 * width
    assert [m.out_features for m in module.mlp if isinstance(m, torch.nn.Linear)] == [
        512,
        256,
        128,
        1,
    ]


def test_paper_attention_multi_head():
    module = ViLUModule(8, attention="paper", n_heads=2, hidden_layer_sizes=(4,))
    assert module.v_proj is not None
    assert module(torch.randn(5, 8), torch.randn(7, 8)).shape == (5,)
    with pytest.raises(ValueError, match="n_heads=3 must divide"):
        ViLUModule(8, attention="paper", n_heads=3)


def test_no_batch_by_candidates_by_dim_tensor():
    """Memory O((B + K) d + B K): no op ever sees a (B, K, d) tensor."""
    B, K, d = 16, 24, 8
    for attention in ("reference", "paper"):
        module = ViLUModule(
            d,
            attention=attention,
            n_heads=2 if attention == "paper" else 1,
            hidden_layer_sizes=(4,),
        )
        module.train()
        for _ in range(2):  # frozen-free path too
            with torch.profiler.profile(record_shapes=True) as prof:
                module(torch.randn(B, d), torch.randn(K, d))
            shapes = [tuple(s) for evt in prof.events() for s in evt.input_shapes if s]
            assert shapes
            assert not any(int(np.prod(s)) >= B * K * d for s in shapes), (
                f"{attention}: a tensor of >= B*K*d elements was built"
            )


def test_candidates_encoded_once_per_call_and_cached_for_fit_texts(toy, fitted):
    X_img, X_txt, _, _ = toy
    clf = clone(fitted).set_params(
        freeze_proj_epochs=0, max_epochs=1, unseen_candidates="model"
    )
    clf.fit(X_img, X_txt, correctness(X_img, X_txt, toy[2]))
    module = clf.net_.module_
    calls = []
    tabulate = module.tabulate
    module.tabulate = lambda t: calls.append(1) or tabulate(t)
    try:
        clf.set_params(predict_batch_size=50)
        clf.decision_function(X_img)  # 8 batches: encoded at most once
        first = len(calls)
        clf.decision_function(X_img)
        clf.decision_function(X_img, X_txt)  # equal to the fit texts: cache hit
        assert len(calls) == first <= 1
        other = X_txt + 0.1
        clf.decision_function(X_img, other)  # new texts: once for all 8 batches
        assert len(calls) == first + 1
        module.fast_inference = False  # the dense path prepares its own
        hook = module.k_proj.register_forward_hook(lambda *a: calls.append(1))
        clf.decision_function(X_img)
        clf.decision_function(X_img)
        hook.remove()
        assert len(calls) == first + 2
    finally:
        del module.tabulate


# ------------------------------------------------------------------- the loss
def test_adaptive_failure_weight_formula():
    for acc in (0.5, 0.6, 0.8, 0.9):
        y = torch.tensor([1.0] * int(acc * 10) + [0.0] * (10 - int(acc * 10)))
        expected = np.log(1 + acc / (1 - acc))
        assert float(failure_weight(y, "adaptive")) == pytest.approx(expected, rel=1e-6)
    assert float(failure_weight(torch.ones(3), 2.5)) == 2.5
    assert float(failure_weight(torch.ones(3), None)) == 1.0


@pytest.mark.parametrize("y", [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
def test_loss_is_finite_when_batch_accuracy_is_0_or_1(y):
    logits = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    loss = weighted_bce_loss(logits, torch.tensor(y), failure_weight_mode="adaptive")
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(logits.grad))


def test_loss_weights_failures():
    logits = torch.zeros(4)
    y = torch.tensor([1.0, 1.0, 1.0, 0.0])  # acc 0.75 -> w = log(4)
    got = weighted_bce_loss(logits, y, failure_weight_mode="adaptive")
    assert float(got) == pytest.approx(np.log(2) * (3 + np.log(4)) / 4, rel=1e-6)


# ------------------------------------------------------------- caption mode
def make_captions(n=300, d=16, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    txt = rng.normal(size=(n, d))
    img = txt + rng.normal(scale=noise, size=(n, d))
    return img, txt


def test_caption_mode_fit_predict():
    img, txt = make_captions()
    clf = ViLUClassifier(mode="caption", caption_group_size=64, batch_size=64, **FAST)
    clf.fit(img, txt)
    conf = clf.decision_function(img, txt)
    assert conf.shape == (300,)
    y = caption_correctness(img, txt, group_size=64)
    assert 0 < y.mean() < 1
    assert clf.score(img, txt) == pytest.approx(roc_auc_score(y, conf))
    # prediction groups are fixed: consecutive rows of caption_group_size
    np.testing.assert_allclose(
        clf.decision_function(img[:64], txt[:64]), conf[:64], rtol=1e-6, atol=1e-6
    )
    assert clf.text_embeddings_ is None


def test_caption_mode_errors():
    img, txt = make_captions(n=20)
    with pytest.raises(ValueError, match="computed from the paired captions"):
        ViLUClassifier(mode="caption", **FAST).fit(img, txt, np.ones(20))
    with pytest.raises(ValueError, match="paired row by row"):
        ViLUClassifier(mode="caption", **FAST).fit(img, txt[:10])
    with pytest.raises(ValueError, match="text_embeddings must be None"):
        ViLUClassifier(mode="caption", text_embeddings=txt).fit(img, txt)
    clf = ViLUClassifier(mode="caption", **{**FAST, "max_epochs": 1}).fit(img, txt)
    with pytest.raises(ValueError, match="needs the paired captions"):
        clf.decision_function(img)


def test_grid_search_caption_mode_slices_images_and_captions_together():
    img, txt = make_captions(n=240, seed=2)
    est = ViLUClassifier(
        mode="caption",
        caption_group_size=40,
        batch_size=40,
        **{**FAST, "max_epochs": 2},
    )
    cv = KFold(n_splits=2)
    grid = GridSearchCV(est, {"lr": [5e-3]}, cv=cv).fit(img, txt)
    for k, (tr, te) in enumerate(cv.split(img)):
        manual = clone(est).fit(img[tr], txt[tr]).score(img[te], txt[te])
        assert grid.cv_results_[f"split{k}_test_score"][0] == pytest.approx(manual)


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "args, match",
    [
        (
            (np.ones((10, 4)), np.ones((3, 5)), np.r_[np.ones(5), np.zeros(5)]),
            "X_txt has 5 features per row",
        ),
        (
            (np.ones((10, 4)), np.ones((1, 4)), np.r_[np.ones(5), np.zeros(5)]),
            "at least 2 are needed",
        ),
        (
            (np.ones(10), np.ones((3, 4)), np.r_[np.ones(5), np.zeros(5)]),
            "X_img must be a 2-D array",
        ),
        (
            (np.ones((10, 4)), np.ones((3, 4)), np.arange(10) % 3),
            "y_correct must be binary",
        ),
        (
            (np.ones((10, 4)), np.ones((3, 4)), np.ones(9)),
            "y_correct has 9 labels, but there are 10",
        ),
        ((np.ones((10, 4)), np.ones((3, 4)), np.ones(10)), "the VLM is always right"),
        ((np.ones((10, 4)), np.ones((3, 4)), np.zeros(10)), "the VLM is always wrong"),
        ((np.ones((0, 4)), np.ones((3, 4)), np.zeros(0)), r"0 sample\(s\)"),
        (
            (np.full((10, 4), np.nan), np.ones((3, 4)), np.r_[np.ones(5), np.zeros(5)]),
            "X_img contains NaN",
        ),
        (
            (np.ones((10, 4)), np.full((3, 4), np.inf), np.r_[np.ones(5), np.zeros(5)]),
            "X_txt contains NaN or infinity",
        ),
    ],
)
def test_clear_errors(args, match):
    with pytest.raises(ValueError, match=match):
        ViLUClassifier(**FAST).fit(*args)


def test_missing_texts_error():
    with pytest.raises(ValueError, match="No candidate text embeddings"):
        ViLUClassifier(**FAST).fit(np.ones((10, 4)), np.r_[np.ones(5), np.zeros(5)])


def test_predict_errors(toy, fitted):
    X_img, X_txt, _, _ = toy
    with pytest.raises(
        ValueError, match="X has 3 features, but ViLUClassifier is expecting 16"
    ):
        fitted.decision_function(X_img[:, :3])
    with pytest.raises(ValueError, match="X_txt has 3 features per row"):
        fitted.decision_function(X_img, X_txt[:, :3])


@pytest.mark.parametrize(
    "param, value",
    [
        ("mode", "captions"),
        ("attention", "multihead"),
        ("max_epochs", 0),
        ("hidden_layer_sizes", [0]),
        ("failure_weight", "auto"),
        ("optimizer", "lbfgs"),
        ("dtype", "float16"),
        ("logit_scale", -1.0),
    ],
)
def test_bad_parameters(toy, param, value):
    X_img, X_txt, _, y = toy
    with pytest.raises(ValueError, match=param):
        ViLUClassifier(**{**FAST, param: value}).fit(X_img, X_txt, y)


def test_device_auto_resolves_here(toy, fitted):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert fitted.device_.type == expected


@pytest.mark.parametrize(
    "param, value",
    [
        # issue 11 defect 15: each was accepted before
        ("tol", float("nan")),
        ("tol", -1e-4),
        ("early_stopping", "no"),
        ("normalize", "False"),
        ("keep_frozen", 1),
        ("use_attention", "yes"),
        ("predict_batch_size", 2.5),
        ("momentum", -0.5),
        ("momentum", float("nan")),
        ("momentum", "0.9"),
        ("device", "gpu"),
        ("device", 3),
        ("max_epochs", True),
        ("lr", float("inf")),
        ("mixed_precision", "yes"),
        ("random_state", "seed"),
        ("hidden_layer_sizes", 64),
    ],
)
def test_invalid_parameters_named_in_the_error(toy, param, value):
    """Every parameter is validated before training, with an error that names it."""
    X_img, X_txt, _, y = toy
    with pytest.raises(ValueError, match=rf"'{param}' parameter of ViLUClassifier"):
        ViLUClassifier(**{**FAST, param: value}).fit(X_img, X_txt, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_a_clear_error(toy):
    X_img, X_txt, _, y = toy
    with pytest.raises(ValueError, match="device='cuda' asks for CUDA"):
        ViLUClassifier(**FAST, device="cuda").fit(X_img, X_txt, y)


def test_candidates_are_a_fit_parameter_not_net_state(toy, fitted):
    """The candidate texts reach the net through fit params; the net holds none."""
    assert not hasattr(fitted.net_, "candidates")
    assert fitted.net_.module_.training is False


# ------------------------------------------- training-loop defects (issue 8)
@pytest.mark.parametrize("n", [200, 1000])
def test_projection_freeze_counts_epochs_whatever_the_data_size(n):
    X_img, X_txt, _, y = make_toy(n=n)
    params = {**FAST, "batch_size": 50, "early_stopping": False}
    eye = torch.eye(X_img.shape[1])
    frozen = ViLUClassifier(**{**params, "max_epochs": 2}, freeze_proj_epochs=2)
    q = frozen.fit(X_img, X_txt, y).net_.module_.q_proj.weight.detach()
    assert torch.equal(q, eye)  # two frozen epochs: never updated
    thawed = ViLUClassifier(**{**params, "max_epochs": 3}, freeze_proj_epochs=2)
    q = thawed.fit(X_img, X_txt, y).net_.module_.q_proj.weight.detach()
    assert not torch.equal(q, eye)  # learned in the third epoch


def test_classification_training_drops_the_last_partial_batch(toy, monkeypatch):
    X_img, X_txt, _, y = toy  # 400 rows, batch 150: two full steps per epoch
    sizes = []
    real = net_mod.weighted_bce_loss

    def spy(logits, *args, **kwargs):
        sizes.append(logits.shape[0])
        return real(logits, *args, **kwargs)

    monkeypatch.setattr(net_mod, "weighted_bce_loss", spy)
    params = {**FAST, "max_epochs": 2, "early_stopping": False, "batch_size": 150}
    ViLUClassifier(**params).fit(X_img, X_txt, y)
    assert sizes == [150] * 4


def test_caption_mode_validates_on_prediction_groups_and_warns_on_mismatch():
    img, txt = make_captions(n=200)
    params = {**FAST, "max_epochs": 1}
    with pytest.warns(UserWarning, match="caption_group_size=100"):
        clf = ViLUClassifier(mode="caption", batch_size=50, caption_group_size=100)
        clf.set_params(**params).fit(img, txt)
    assert clf.net_.get_params()["iterator_valid__batch_size"] == 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ViLUClassifier(mode="caption", batch_size=50, caption_group_size=50).set_params(
            **params
        ).fit(img, txt)


def test_n_epochs_does_not_count_an_epoch_cut_short(toy, monkeypatch):
    X_img, X_txt, _, y = toy
    calls = []
    real = net_mod.ViLUNet.train_step

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # first step of the third epoch (two per epoch)
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(net_mod.ViLUNet, "train_step", interrupted)
    params = {**FAST, "max_epochs": 6, "early_stopping": False, "batch_size": 200}
    clf = ViLUClassifier(**params)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X_img, X_txt, y)
    assert len(clf.history_) == 3 and clf.n_epochs_ == 2


def test_float64_model_scores_keep_float64_precision(toy):
    X_img, X_txt, _, y = toy
    clf = ViLUClassifier(**{**FAST, "max_epochs": 1}, dtype="float64")
    clf.fit(X_img, X_txt, y)
    module = clf.net_.module_
    with torch.inference_mode():
        texts = torch.as_tensor(clf.text_embeddings_, dtype=torch.float64)
        expected = module(torch.as_tensor(X_img), texts).numpy()
    np.testing.assert_array_equal(clf.decision_function(X_img), expected)


# ------------------------------------------- weight averaging, paper recipe
class _Trajectory(net_mod.Callback):
    """Records the initial parameters and those after every training step."""

    def on_train_begin(self, net, **kwargs):
        self.start = [p.detach().clone() for p in net.module_.parameters()]
        self.steps = []

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.steps.append([p.detach().clone() for p in net.module_.parameters()])


def _record(monkeypatch):
    recorder = _Trajectory()
    original = ViLUClassifier._callbacks
    monkeypatch.setattr(
        ViLUClassifier,
        "_callbacks",
        lambda self, *, early: [("trajectory", recorder), *original(self, early=early)],
    )
    return recorder


def test_weight_averaging_is_the_ema_of_the_trajectory(toy, monkeypatch):
    X_img, X_txt, _, y = toy
    recorder = _record(monkeypatch)
    params = {**FAST, "max_epochs": 3, "batch_size": 64, "dtype": "float64"}
    clf = ViLUClassifier(**params, weight_averaging_epochs=2.0).fit(X_img, X_txt, y)
    steps_per_epoch = len(X_img) // 64
    assert len(recorder.steps) == 3 * steps_per_epoch
    # time constant of 2 epochs of steps, warm-up decay (1 + t) / (10 + t) first
    decay = 1 - 1 / (2.0 * steps_per_epoch)
    avg = recorder.start
    for t, params_t in enumerate(recorder.steps):
        w = 1 - min(decay, (1 + t) / (10 + t))
        avg = [a + w * (p - a) for a, p in zip(avg, params_t, strict=True)]
    final = [p.detach() for p in clf.net_.module_.parameters()]
    for f, a in zip(final, avg, strict=True):
        torch.testing.assert_close(f, a, rtol=1e-10, atol=1e-12)
    assert any(
        not torch.allclose(f, p) for f, p in zip(final, recorder.steps[-1], strict=True)
    )


def test_weight_averaging_off_keeps_the_last_weights(toy, monkeypatch):
    X_img, X_txt, _, y = toy
    recorder = _record(monkeypatch)
    clf = ViLUClassifier(**FAST, weight_averaging_epochs=None).fit(X_img, X_txt, y)
    for f, p in zip(clf.net_.module_.parameters(), recorder.steps[-1], strict=True):
        torch.testing.assert_close(f.detach(), p)


def test_reference_params_give_the_paper_head():
    from vilu_sklearn import REFERENCE_PARAMS

    X_img, X_txt, _, y = make_toy(n=300)
    params = {**REFERENCE_PARAMS, "max_epochs": 2, "hidden_layer_sizes": (16,)}
    clf = ViLUClassifier(**params, random_state=0).fit(X_img, X_txt, y)
    module = clf.net_.module_
    assert module.posterior is None
    assert isinstance(clf.net_.optimizer_, torch.optim.SGD)
    assert "weight_averaging" not in dict(clf.net_.callbacks_)
    # the reference forward: MLP([z_v ; softmax(s cos) Z ; Z[argmax]]) and nothing else
    with torch.no_grad():
        z = torch.nn.functional.normalize(torch.as_tensor(X_img[:50]).float(), dim=1)
        t = torch.nn.functional.normalize(torch.as_tensor(X_txt).float(), dim=1)
        sims = z @ t.T
        q = module.q_proj(z) if not module.projections_bypassed() else z
        k = module.k_proj(t) if not module.projections_bypassed() else t
        att = torch.softmax(module.logit_scale * q @ k.T, dim=1) @ k
        x = torch.cat([z, att, t[sims.argmax(1)]], dim=1)
        expected = module.mlp(x).squeeze(-1).numpy()
    np.testing.assert_allclose(
        clf.decision_function(X_img[:50], X_txt), expected, rtol=1e-4, atol=1e-5
    )


# ---------------------------------------------------------------- issue 11
def _small(**kw):
    small = dict(hidden_layer_sizes=(8,), max_epochs=4, early_stopping=False)
    return ViLUClassifier(**{**FAST, **small, "device": "cpu", **kw})


def _data(n=150, seed=0):
    X, T, _, y = make_toy(n=n, K=4, d=8, seed=seed, scale=1.0)
    return X, T, y


@pytest.mark.parametrize("early", [False, True])
def test_diverged_training_is_not_returned_silently(early):
    # defect 4: lr=1e6 gave an all-NaN model (or an obscure roc_auc error)
    X, T, y = _data()
    clf = _small(lr=1e12, optimizer="sgd", early_stopping=early, max_epochs=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            clf.fit(X, T, y)
        except ValueError as exc:
            assert "diverged" in str(exc) and "lr" in str(exc)
            return
    assert any("diverged" in str(w.message) for w in caught)
    assert np.isfinite(clf.decision_function(X, T)).all()


def test_interrupted_training_is_visible(monkeypatch):
    # defect 5: Ctrl-C returned a truncated model with no message
    X, T, y = _data()
    clf = _small(max_epochs=20)
    from vilu_sklearn import _net

    class Interrupt(_net.Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 3:
                raise KeyboardInterrupt

    original = clf._callbacks

    def with_interrupt(*, early):
        return [*original(early=early), ("interrupt", Interrupt())]

    monkeypatch.setattr(clf, "_callbacks", with_interrupt)
    with pytest.raises(KeyboardInterrupt, match="interrupted after 3 of 20 epochs"):
        clf.fit(X, T, y)
    assert clf.interrupted_ is True
    assert _small(max_epochs=2).fit(X, T, y).interrupted_ is False


def test_benchmark_does_not_report_an_interrupted_fit(monkeypatch):
    from vilu_sklearn import benchmark

    X, T, y = _data()

    def interrupted_fit(self, *args, **kwargs):
        self.interrupted_ = True
        return self

    monkeypatch.setattr(ViLUClassifier, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        benchmark(
            {"ViLU": _small()},
            X[:100],
            T,
            y[:100],
            X[100:],
            y[100:],
            y_kind="correct",
            n_resamples=0,
            as_frame=False,
        )


def test_one_class_validation_split_warns_and_falls_back():
    # defect 16: a one-class validation split gave a constant AUROC of 0.5 and
    # silently restored the epoch-1 weights
    X, T, _ = _data(n=200)
    y = np.ones(200, dtype=int)
    y[:1] = 0  # one failure: the validation split cannot hold both classes
    clf = _small(early_stopping=True, max_epochs=5, n_iter_no_change=1)
    with pytest.warns(UserWarning, match="validation split.*one class"):
        clf.fit(X, T, y)
    assert clf.n_epochs_ == 5 and clf.best_epoch_ == 5


def test_negative_strides_accepted():
    # defect 18: T[::-1] crashed inside torch
    X, T, y = _data()
    clf = _small(max_epochs=2).fit(X[::-1], T[::-1], y[::-1])
    ref = _small(max_epochs=2).fit(
        np.ascontiguousarray(X[::-1]), np.ascontiguousarray(T[::-1]), y[::-1]
    )
    np.testing.assert_array_equal(
        clf.decision_function(X[::-1], T[::-1]),
        ref.decision_function(
            np.ascontiguousarray(X[::-1]), np.ascontiguousarray(T[::-1])
        ),
    )


@pytest.mark.parametrize("scale", [1e-13, 1e20])
def test_extreme_magnitudes_keep_the_scores(scale):
    # defect 14: |x| >= 1e20 or <= 1e-13 gave constant scores or NaN in float32
    X, T, y = _data()
    clf = _small(max_epochs=2).fit(X, T, y)
    X32 = X.astype(np.float32)
    ref = clf.decision_function(X32, T)
    got = clf.decision_function((X32 * np.float32(scale)), T * scale)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="X_img.*float32"):
        clf.decision_function(X * 1e300, T)


def test_dataframe_text_columns_checked():
    # defect 7: ViLU crashed on a reordered X_txt DataFrame
    pd = pytest.importorskip("pandas")
    X, T, y = _data()
    cols = [f"e{i}" for i in range(8)]
    img, txt = pd.DataFrame(X, columns=cols), pd.DataFrame(T, columns=cols)
    clf = _small(max_epochs=1).fit(img, txt, y)
    clf.decision_function(img, txt)
    with pytest.raises(ValueError, match="X_txt.*columns"):
        _small(max_epochs=1).fit(img, txt[cols[::-1]], y)
    with pytest.raises(ValueError, match="X_txt.*columns"):
        clf.decision_function(img, txt[cols[::-1]])


# ------------------------------------------------------------ class labels
def _posterior_accuracy(clf, X_img, X_txt, labels):
    """Share of images whose posterior-head argmax is their true class."""
    z = torch.nn.functional.normalize(torch.tensor(X_img, dtype=torch.float32), dim=1)
    t = torch.nn.functional.normalize(torch.tensor(X_txt, dtype=torch.float32), dim=1)
    with torch.no_grad():
        g = clf.net_.module_.posterior.candidate_logits(z, t, z @ t.T)
    return float((g.argmax(1).numpy() == labels).mean())


def test_labels_teach_the_posterior_head_where_failures_belong():
    # images of class 0 look like prompt 1 and vice versa: y_correct only says
    # that predictions 0 and 1 are wrong, the labels say what they really are
    rng = np.random.default_rng(0)
    K, d, n = 4, 16, 800
    X_txt = rng.normal(size=(K, d))
    labels = rng.integers(0, K, size=n)
    X_img = X_txt[np.array([1, 0, 2, 3])[labels]] + rng.normal(scale=0.5, size=(n, d))
    y = correctness(X_img, X_txt, labels)
    params = {**FAST, "posterior_hidden_size": 32, "logit_scale": 10.0}
    params.update(batch_size=64, max_epochs=10)
    with_labels = ViLUClassifier(**params).fit(X_img, X_txt, y, labels=labels)
    without = ViLUClassifier(**params).fit(X_img, X_txt, y)
    assert _posterior_accuracy(with_labels, X_img, X_txt, labels) > 0.9
    assert _posterior_accuracy(without, X_img, X_txt, labels) < 0.8


@pytest.mark.parametrize(
    ("params", "labels", "match"),
    [
        ({}, np.zeros(3, dtype=int), "labels has 3 entries, but X_img has 400 rows"),
        ({}, np.zeros(400), "got dtype float64"),
        ({}, np.full(400, 5), r"labels must be integer class indices in \[0, 5\)"),
        ({}, np.full(400, -1), r"with values in \[-1, -1\]"),
        ({"posterior_head": False}, np.zeros(400, dtype=int), "posterior_head=True"),
    ],
)
def test_bad_labels_get_a_clear_error(toy, params, labels, match):
    X_img, X_txt, _, y = toy
    with pytest.raises(ValueError, match=match):
        ViLUClassifier(**{**FAST, **params}).fit(X_img, X_txt, y, labels=labels)


def test_labels_need_classification_mode(toy):
    X_img, _, labels, _ = toy
    clf = ViLUClassifier(**FAST, mode="caption", caption_group_size=8)
    with pytest.raises(ValueError, match="mode='classification'"):
        clf.fit(X_img, X_img, labels=labels)


def test_labels_with_early_stopping_and_sample_weight(toy):
    X_img, X_txt, labels, y = toy
    clf = ViLUClassifier(**{**FAST, "early_stopping": True, "max_epochs": 3})
    clf.fit(X_img, X_txt, y, labels=labels, sample_weight=np.ones(len(y)))
    assert np.isfinite(clf.decision_function(X_img, X_txt)).all()
    assert "valid_auroc" in clf.history_[-1]


# ------------------------------------------------- issue 18: defects 1, 7, 10
def test_labels_that_contradict_y_correct_are_refused(toy):
    # issue 18, defect 1: labels shifted by one class trained silently
    X_img, X_txt, labels, y = toy
    shifted = (labels + 1) % X_txt.shape[0]
    with pytest.raises(ValueError, match=r"labels contradict y_correct on \d+ of 400"):
        ViLUClassifier(**FAST).fit(X_img, X_txt, y, labels=shifted)


def test_a_few_contradicting_labels_warn_with_the_count(toy):
    X_img, X_txt, labels, y = toy
    few = labels.copy()
    i = int(np.flatnonzero(y == 1)[0])
    few[i] = (few[i] + 1) % X_txt.shape[0]  # 1 of 400 rows: under 1 %
    clf = ViLUClassifier(**{**FAST, "max_epochs": 1})
    with pytest.warns(UserWarning, match="labels contradict y_correct on 1 of 400"):
        clf.fit(X_img, X_txt, y, labels=few)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # agreeing labels: no warning
        clf.fit(X_img, X_txt, y, labels=labels)


def test_ctrl_c_inside_grid_search_stops_the_search(toy, monkeypatch):
    # issue 18, defect 7: skorch swallowed the KeyboardInterrupt, so one Ctrl-C
    # ended the current fit only and the search scored the truncated model
    X_img, X_txt, _, y = toy
    fits = []
    real = net_mod.ViLUNet.train_step

    def interrupted(self, *args, **kwargs):
        fits.append(1)
        if len(fits) == 1:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(net_mod.ViLUNet, "train_step", interrupted)
    search = GridSearchCV(
        ViLUClassifier(**{**FAST, "max_epochs": 1}, text_embeddings=X_txt),
        {"lr": [1e-3, 1e-2]},
        cv=2,
    )
    with pytest.raises(KeyboardInterrupt):
        search.fit(X_img, y)
    assert len(fits) == 1  # no other fit started
    from vilu_sklearn.selective import SelectiveClassifier

    fits.clear()
    selective = SelectiveClassifier(
        ViLUClassifier(**{**FAST, "max_epochs": 1}), target_risk=0.3
    )
    with pytest.raises(KeyboardInterrupt):  # not calibrated on a truncated model
        selective.fit(X_img, X_txt, y)
    assert not hasattr(selective, "threshold_")


def test_empty_hidden_layer_sizes_is_a_linear_head(toy):
    # issue 18, defect 10: hidden_layer_sizes=() passed validation, then failed
    # inside torch
    X_img, X_txt, labels, y = toy
    for posterior_head in (True, False):
        clf = ViLUClassifier(
            **{**FAST, "hidden_layer_sizes": ()}, posterior_head=posterior_head
        ).fit(X_img, X_txt, y)
        mlp = clf.net_.module_.mlp
        assert len(mlp) == 1 and mlp[0].in_features == 3 * X_img.shape[1]
        fast = clf.decision_function(X_img, X_txt)
        clf.net_.module_.fast_inference = False
        dense = clf.decision_function(X_img, X_txt)
        assert np.isfinite(fast).all()
        np.testing.assert_allclose(fast, dense, rtol=1e-4, atol=1e-4)
        # the toy's failures are found by the posterior head (0.91 with (32,))
        assert roc_auc_score(y, fast) > (0.8 if posterior_head else 0.5)


# ------------------------------------------------------ issue 18: defect 8
def test_large_logit_scale_keeps_the_default_head_working(toy):
    # issue 18, defect 8: the posterior head's logit was capped at 100, so a
    # large logit_scale gave (nearly) constant scores: AUROC 0.69 at 1e4
    X_img, X_txt, _, y = toy
    aurocs = {}
    for scale in (100.0, 1e4, 1e6):
        clf = ViLUClassifier(**FAST, logit_scale=scale).fit(X_img, X_txt, y)
        conf = clf.decision_function(X_img, X_txt)
        assert len(np.unique(conf)) > 0.9 * len(conf)
        aurocs[scale] = roc_auc_score(y, conf)
    assert aurocs[1e4] > aurocs[100.0] - 0.05 and aurocs[1e6] > aurocs[100.0] - 0.05


@pytest.mark.parametrize(
    ("params", "scale", "sample_weight", "match"),
    [
        ({}, 1.0, 1e37, "sample_weight holds values up to 1e\\+37"),
        ({"normalize": False}, 1e20, None, "with normalize=False.*dot products"),
        ({"logit_scale": 1e39}, 1.0, None, "logit_scale=1e\\+39 times"),
    ],
)
def test_overflowing_inputs_are_not_blamed_on_the_learning_rate(
    toy, params, scale, sample_weight, match
):
    # issue 18, defect 8: float32 overflow from the inputs was reported as
    # "lower the learning rate"
    X_img, X_txt, _, y = toy
    sw = None if sample_weight is None else np.full(len(y), sample_weight)
    clf = ViLUClassifier(**{**FAST, "dtype": "float32", **params})
    with pytest.raises(ValueError, match="overflow float32: " + match) as err:
        clf.fit(X_img * scale, X_txt * scale, y, sample_weight=sw)
    assert "learning rate" not in str(err.value)


def test_weights_broken_by_the_last_step_are_not_returned():
    # a last optimiser step that makes the outputs non-finite (lr=1e6) was
    # seen by no batch: the model gave all-NaN scores without a word
    X, T, y = _data()
    clf = _small(max_epochs=2, lr=1e6, dtype="float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            clf.fit(X, T, y)
        except ValueError as exc:  # diverged in the first epoch: no weights
            assert "diverged" in str(exc)
            return
    assert any("diverged" in str(w.message) for w in caught)
    assert np.isfinite(clf.decision_function(X, T)).all()


# ------------------------------------------------------------- branch_loss
def _parts(clf, X_img, X_txt):
    m = clf.net_.module_
    m.eval()
    with torch.no_grad():
        return m(
            torch.as_tensor(X_img, dtype=torch.float32),
            torch.as_tensor(X_txt, dtype=torch.float32),
            return_parts=True,
        ).numpy()


def test_separate_branch_loss_trains_the_posterior_head_on_its_own(toy):
    # with its own loss the posterior head never sees the branch's gradient:
    # two branches of different widths leave it exactly the same (its linear
    # map starts at fixed values); with the joint loss they do not
    X_img, X_txt, _, y = toy
    posterior = {}
    for mode in ("separate", "joint"):
        for width in (32, 8):
            params = {**FAST, "hidden_layer_sizes": (width,), "branch_loss": mode}
            clf = ViLUClassifier(**params, posterior_hidden_size=0).fit(X_img, X_txt, y)
            parts = _parts(clf, X_img, X_txt)
            np.testing.assert_allclose(
                parts.sum(1), clf.decision_function(X_img, X_txt), atol=1e-4
            )
            posterior[mode, width] = parts[:, 1]
    same = np.abs(posterior["separate", 32] - posterior["separate", 8]).max()
    moved = np.abs(posterior["joint", 32] - posterior["joint", 8]).max()
    assert same < 1e-6 < 1e-5 < moved


def test_separate_branch_loss_is_one_bce_per_term():
    net = net_mod.ViLUNet(
        ViLUModule,
        module__dim=4,
        criterion=torch.nn.BCEWithLogitsLoss,
        vilu_failure_weight=None,
    )
    net.initialize()
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.3], [-0.2, 0.1]])
    y = torch.tensor([1.0, 0.0, 1.0])
    expected = sum(
        weighted_bce_loss(logits[:, j], y, failure_weight_mode=None) for j in (0, 1)
    )
    assert float(net.get_loss(logits, y)) == pytest.approx(float(expected))
    assert float(net.get_loss(logits.sum(1), y)) == pytest.approx(
        float(weighted_bce_loss(logits.sum(1), y, failure_weight_mode=None))
    )


def test_separate_branch_loss_in_caption_mode_and_with_labels(toy):
    img, txt = make_captions()
    clf = ViLUClassifier(
        mode="caption", caption_group_size=64, batch_size=64, branch_loss="separate",
        **FAST,
    ).fit(img, txt)  # fmt: skip
    assert np.isfinite(clf.decision_function(img, txt)).all()
    X_img, X_txt, labels, y = toy
    clf = ViLUClassifier(branch_loss="separate", **FAST)
    clf.fit(X_img, X_txt, y, labels=labels)
    parts = _parts(clf, X_img, X_txt)
    np.testing.assert_allclose(
        parts.sum(1), clf.decision_function(X_img, X_txt), atol=1e-4
    )


def test_separate_branch_loss_needs_the_posterior_head(toy):
    X_img, X_txt, _, y = toy
    clf = ViLUClassifier(posterior_head=False, branch_loss="separate", **FAST)
    with pytest.raises(ValueError, match="branch_loss='separate'.*posterior_head=True"):
        clf.fit(X_img, X_txt, y)
