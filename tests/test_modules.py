"""Tests of the torch modules: fast exact inference, autocast, freezing, loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vilu_sklearn._modules import (
    CandidateTables,
    PosteriorHead,
    ViLUModule,
    failure_weight,
    softmax_times_table,
    weighted_bce_loss,
)

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _trained_like(module: ViLUModule, scale: float = 0.3) -> ViLUModule:
    """Move the projections away from the identity, as training does."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for proj in (module.q_proj, module.k_proj, module.v_proj):
            if proj is not None:
                noise = torch.randn(proj.weight.shape, generator=gen)
                proj.weight.add_(scale * noise.to(proj.weight.dtype))
    return module.eval()


def _fast_and_dense(module, img, txt, **kw):
    with torch.inference_mode():
        module.fast_inference = True
        fast = module(img, module.tabulate(txt), **kw)
        module.fast_inference = False
        dense = module(img, txt, **kw)
        module.fast_inference = True
    return fast, dense


# ------------------------------------------------------------ fast == dense
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "attention, n_heads, frozen",
    [
        ("reference", 1, False),
        ("reference", 1, True),
        ("paper", 1, False),
        ("paper", 4, False),
        ("paper", 4, True),
    ],
)
@pytest.mark.parametrize("features", [(True, True), (True, False), (False, True)])
def test_fast_inference_equals_dense(dtype, attention, n_heads, frozen, features):
    torch.manual_seed(0)
    module = ViLUModule(
        32,
        attention=attention,
        n_heads=n_heads,
        keep_frozen=frozen,
        use_attention=features[0],
        use_predicted_text=features[1],
        hidden_layer_sizes=(24, 8),
    ).to(dtype)
    _trained_like(module)
    img, txt = torch.randn(40, 32, dtype=dtype), torch.randn(70, 32, dtype=dtype)
    fast, dense = _fast_and_dense(module, img, txt)
    torch.testing.assert_close(fast, dense, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_inference_peaked_scores_take_the_sparse_path(dtype, monkeypatch):
    """Images near their class text: few candidates within the margin."""
    torch.manual_seed(0)
    module = _trained_like(ViLUModule(32, hidden_layer_sizes=(16,)).to(dtype), 0.05)
    txt = torch.randn(300, 32, dtype=dtype)
    img = txt[torch.randint(0, 300, (64,))] + 0.05 * torch.randn(64, 32, dtype=dtype)
    bags = []
    real = torch.nn.functional.embedding_bag
    monkeypatch.setattr(
        torch.nn.functional,
        "embedding_bag",
        lambda *a, **k: bags.append(1) or real(*a, **k),
    )
    fast, dense = _fast_and_dense(module, img, txt)
    assert bags, "the truncated (embedding bag) path was not taken"
    torch.testing.assert_close(fast, dense, rtol=0, atol=TOL[dtype])


def test_fast_inference_caption_mode_and_correctness():
    torch.manual_seed(0)
    module = _trained_like(ViLUModule(16, hidden_layer_sizes=(8,)))
    img = torch.randn(30, 16)
    cap = img + 0.8 * torch.randn(30, 16)
    (f_logit, f_ok), (d_logit, d_ok) = _fast_and_dense(
        module, img, cap, return_correct=True
    )
    torch.testing.assert_close(f_logit, d_logit, rtol=0, atol=1e-5)
    assert torch.equal(f_ok, d_ok) and 0 < f_ok.sum() < 30


def test_tables_are_reusable_and_identity_projections_share_the_similarities():
    module = ViLUModule(16, hidden_layer_sizes=(8,)).eval()  # identity at init
    txt = torch.randn(12, 16)
    tables = module.tabulate(txt)
    assert isinstance(tables, CandidateTables)
    assert tables.score_keys is None  # scores = logit_scale * similarities
    assert tables.alpha is not None and tables.alpha.shape == (12, 8)
    img = torch.randn(5, 16)
    with torch.inference_mode():
        torch.testing.assert_close(module(img, tables), module(img, txt))
    _trained_like(module)
    assert module.tabulate(txt).score_keys is not None


@pytest.mark.parametrize("posterior", [False, True])
def test_tables_stack_every_product_with_the_image_embedding(posterior):
    """One (N, d) stack, the per-product blocks being views of it."""
    d, K, H = 16, 12, 8
    module = ViLUModule(d, hidden_layer_sizes=(H,), posterior_head=posterior)
    tables = _trained_like(module).tabulate(torch.randn(K, d))
    blocks = [tables.texts, tables.score_keys]
    blocks += [tables.posterior_keys] if posterior else []
    assert tables.left.shape == ((len(blocks) * K + H), d)
    for i, block in enumerate(blocks):
        assert block is not None and block.data_ptr() == tables.left[i * K].data_ptr()
    image_block = module._first_layer_blocks()["image"]
    torch.testing.assert_close(tables.left[-H:], image_block, rtol=0, atol=0)


@pytest.mark.parametrize("stack_rows", [0, 10**6])
def test_fast_path_stacked_or_per_block(monkeypatch, stack_rows):
    """One GEMM for the products with z_v, or one per block: the same logits."""
    from vilu_sklearn import _modules

    monkeypatch.setattr(_modules, "_STACK_ROWS", stack_rows)
    torch.manual_seed(0)
    module = ViLUModule(16, hidden_layer_sizes=(8,), posterior_head=True)
    module = _posterior_trained_like(module)
    img, txt = torch.randn(40, 16), torch.randn(30, 16)
    fast, dense = _fast_and_dense(module, img, txt)
    torch.testing.assert_close(fast, dense, atol=100 * TOL[torch.float32], rtol=0)


def test_raw_texts_are_tabulated_only_when_the_batch_covers_them():
    module = _trained_like(ViLUModule(8, hidden_layer_sizes=(4,)))
    calls = []
    tabulate = module.tabulate
    module.tabulate = lambda t: calls.append(len(t)) or tabulate(t)  # type: ignore[method-assign]
    with torch.inference_mode():
        module(torch.randn(3, 8), torch.randn(5, 8))  # B < K: dense
        module(torch.randn(5, 8), torch.randn(5, 8))  # caption group: tables
    assert calls == [5]


def test_training_and_gradients_use_the_dense_path():
    module = _trained_like(ViLUModule(8, hidden_layer_sizes=(4,))).train()
    calls = []
    module.tabulate = lambda t: calls.append(1)  # type: ignore[method-assign]
    module(torch.randn(3, 8), torch.randn(4, 8)).sum().backward()
    module.eval()
    module(torch.randn(3, 8), torch.randn(4, 8))  # grad enabled: dense
    assert not calls
    assert module.q_proj is not None and module.q_proj.weight.grad is not None


# ------------------------------------------------------ truncated softmax
def _dense_reference(scores, table, n_heads=1):
    B = scores.shape[0] // n_heads
    w = torch.softmax(scores.double(), dim=1).reshape(B, -1)
    return w @ table.double()


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "profile", ["flat", "ties", "one_candidate", "two_candidates", "peaked", "cliff"]
)
def test_softmax_times_table_adversarial_profiles(dtype, profile, overwrite):
    gen = torch.Generator().manual_seed(0)
    K = {"one_candidate": 1, "two_candidates": 2}.get(profile, 200)
    scores = torch.randn(16, K, generator=gen, dtype=dtype)
    if profile == "flat":
        scores = torch.zeros(16, K, dtype=dtype)
    elif profile == "ties":  # several exact ties at the top, the rest far below
        scores = -1000.0 * torch.rand(16, K, generator=gen, dtype=dtype)
        scores[:, :5] = 3.0
    elif profile == "peaked":
        scores = 100.0 * scores
    elif profile == "cliff":  # just inside and just outside the margin
        margin = math.log(K / torch.finfo(dtype).eps)
        scores = torch.full((16, K), -margin - 1.0, dtype=dtype)
        scores[:, 0] = 0.0
        scores[:, 1] = -margin + 1e-3
    table = torch.randn(K, 8, generator=gen, dtype=dtype)
    expected = _dense_reference(scores, table)
    got = softmax_times_table(scores, table, overwrite=overwrite)
    eps = torch.finfo(dtype).eps
    np.testing.assert_allclose(got.double(), expected, rtol=0, atol=16 * eps)


def test_softmax_times_table_float64_keeps_what_float32_may_drop():
    # exp(-25) = 1.4e-11: below float32's eps, far above float64's
    scores = torch.tensor([[0.0, -25.0] + [-1e4] * 98], dtype=torch.float64)
    table = torch.zeros(100, 1, dtype=torch.float64)
    table[1] = 1e6
    got = softmax_times_table(scores, table)
    assert float(got) == pytest.approx(1e6 * math.exp(-25), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    K=st.integers(1, 60),
    n_heads=st.sampled_from([1, 2, 3]),
    scale=st.floats(0.0, 300.0),
    seed=st.integers(0, 2**16),
)
def test_softmax_times_table_property(K, n_heads, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    B = 7
    scores = scale * torch.randn(B * n_heads, K, generator=gen)
    table = torch.randn(n_heads * K, 5, generator=gen)
    got = softmax_times_table(scores, table, n_heads)
    expected = _dense_reference(scores, table, n_heads)
    bound = n_heads * 16 * torch.finfo(torch.float32).eps * table.abs().max()
    assert (got.double() - expected).abs().max() <= bound


# ----------------------------------------------------------------- autocast
def _first_layer_inputs(module, img, txt):
    seen = []
    hook = module.mlp[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    try:
        module(img, txt)
    finally:
        hook.remove()
    return seen[0]


def test_autocast_keeps_similarities_prediction_and_logit_in_fp32():
    """bf16 autocast on CPU: the predicted text and the logit stay float32."""
    torch.manual_seed(0)
    d, K = 64, 512
    module = ViLUModule(d, hidden_layer_sizes=(32,), fast_inference=False).eval()
    base = torch.randn(1, d)
    txt = base + 1e-3 * torch.randn(K, d)  # near-ties that bf16 cannot separate
    img = base + 1e-3 * torch.randn(200, d)
    with torch.no_grad():
        ref = _first_layer_inputs(module, img, txt)
        ref_logits = module(img, txt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = _first_layer_inputs(module, img, txt)
            logits = module(img, txt)
            _, ok = module(img[:K], txt[: len(img)], return_correct=True)
        _, ref_ok = module(img[:K], txt[: len(img)], return_correct=True)
    assert torch.equal(got[:, -d:].float(), ref[:, -d:])  # z_t_hat
    assert logits.dtype == torch.float32
    assert torch.equal(ok, ref_ok)
    # a bf16 output layer would leave at most a few hundred distinct values
    assert len(torch.unique(logits)) >= 0.9 * len(torch.unique(ref_logits))


def test_fast_path_under_autocast_keeps_the_prediction():
    torch.manual_seed(0)
    module = _trained_like(ViLUModule(16, hidden_layer_sizes=(8,)))
    img, txt = torch.randn(50, 16), torch.randn(40, 16)
    with torch.inference_mode():
        ref = module(img, txt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = module(img, txt)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=0, atol=0.1)


# ------------------------------------------------------------------ freezing
@pytest.mark.parametrize("attention, n_heads", [("reference", 1), ("paper", 2)])
def test_unfreezing_is_continuous(attention, n_heads):
    """Bypassed (frozen) and active projections are the same function at init."""
    torch.manual_seed(0)
    module = ViLUModule(
        16, attention=attention, n_heads=n_heads, hidden_layer_sizes=(8,)
    )
    module.fast_inference = False
    img, txt = torch.randn(10, 16), torch.randn(6, 16)
    z_v = torch.nn.functional.normalize(img, dim=-1)
    outputs = []
    for frozen in (True, False):
        module.projections_frozen = frozen
        enc = module.encode_candidates(txt)
        sims = z_v @ enc.texts.T
        outputs.append(module._attend(z_v, enc, sims))
    cos = torch.nn.functional.cosine_similarity(outputs[0], outputs[1], dim=1)
    assert cos.min() > 1 - 1e-6


def test_frozen_projections_get_no_gradient():
    module = ViLUModule(
        8, attention="paper", hidden_layer_sizes=(4,), projections_frozen=True
    )
    module(torch.randn(3, 8), torch.randn(4, 8)).sum().backward()
    for proj in (module.q_proj, module.k_proj, module.v_proj):
        assert proj is not None and proj.weight.grad is None
    module.projections_frozen = False
    module(torch.randn(3, 8), torch.randn(4, 8)).sum().backward()
    assert module.q_proj is not None and module.q_proj.weight.grad is not None


# ---------------------------------------------------------------------- loss
def test_adaptive_failure_weight_uses_sample_weight():
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    sw = torch.tensor([3.0, 3.0, 1.0, 1.0])  # weighted accuracy 0.75
    assert float(failure_weight(y, "adaptive", sw)) == pytest.approx(math.log(4))
    assert float(failure_weight(y, "adaptive")) == pytest.approx(math.log(2))
    logits = torch.zeros(4)
    loss = weighted_bce_loss(logits, y, sample_weight=sw)
    expected = (3 + 3 + math.log(4) * 2) * math.log(2) / 4
    assert float(loss) == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------- posterior head
def _posterior_trained_like(module: ViLUModule) -> ViLUModule:
    gen = torch.Generator().manual_seed(2)
    assert module.posterior is not None
    with torch.no_grad():
        for p in module.posterior.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen).to(p.dtype))
    return _trained_like(module)


@pytest.mark.parametrize("hidden", [0, 12])
def test_posterior_head_starts_as_the_logit_of_msp(hidden):
    torch.manual_seed(0)
    img, txt = torch.randn(64, 16, dtype=torch.float64), torch.randn(7, 16)
    txt = txt.double()
    module = ViLUModule(
        16, hidden_layer_sizes=(8,), posterior_head=True, posterior_hidden_size=hidden
    )
    module.logit_scale = module.posterior.logit_scale = 20.0
    assert float(module.posterior.log_tau) == 0.0  # tau = 1
    module = module.double().eval()
    z_v = torch.nn.functional.normalize(img, dim=1)
    t = torch.nn.functional.normalize(txt, dim=1)
    sims = z_v @ t.T
    got = module.posterior(z_v, t, sims)
    p = torch.softmax(20.0 * sims, dim=1).max(dim=1).values
    torch.testing.assert_close(got, torch.log(p) - torch.log1p(-p))


def test_posterior_head_adds_to_the_mlp_logit():
    torch.manual_seed(0)
    img, txt = torch.randn(32, 16), torch.randn(5, 16)
    with_head = _posterior_trained_like(
        ViLUModule(16, hidden_layer_sizes=(8,), posterior_head=True)
    )
    without = ViLUModule(16, hidden_layer_sizes=(8,)).eval()
    without.load_state_dict(
        {k: v for k, v in with_head.state_dict().items() if "posterior" not in k}
    )
    with torch.no_grad():
        z_v = torch.nn.functional.normalize(img, dim=1)
        t = torch.nn.functional.normalize(txt, dim=1)
        extra = with_head.posterior(z_v, t, z_v @ t.T)
        torch.testing.assert_close(with_head(img, txt), without(img, txt) + extra)


@pytest.mark.parametrize("hidden", [0, 12])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("K", [1, 2, 50])
def test_posterior_head_fast_path_equals_dense(dtype, K, hidden):
    torch.manual_seed(0)
    module = ViLUModule(
        16, hidden_layer_sizes=(8,), posterior_head=True, posterior_hidden_size=hidden
    )
    module = _posterior_trained_like(module.to(dtype))
    img, txt = torch.randn(40, 16, dtype=dtype), torch.randn(K, 16, dtype=dtype)
    fast, dense = _fast_and_dense(module, img, txt)
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, dense, atol=100 * TOL[dtype], rtol=0)


@pytest.mark.parametrize("hidden", [0, 12])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_posterior_fast_path_with_tied_candidates_and_in_caption_mode(dtype, hidden):
    """Duplicated candidates (exact ties of the prediction) and caption groups."""
    torch.manual_seed(0)
    module = ViLUModule(
        16, hidden_layer_sizes=(8,), posterior_head=True, posterior_hidden_size=hidden
    )
    module = _posterior_trained_like(module.to(dtype))
    txt = torch.randn(9, 16, dtype=dtype)
    txt = torch.cat([txt, txt[[2, 2, 7]]])  # ties at the top for some images
    img = txt[[2, 7, 0, 4] * 5] + 0.3 * torch.randn(20, 16, dtype=dtype)
    fast, dense = _fast_and_dense(module, img, txt)
    torch.testing.assert_close(fast, dense, atol=100 * TOL[dtype], rtol=0)
    cap = img + 0.8 * torch.randn(20, 16, dtype=dtype)
    (f_logit, f_ok), (d_logit, d_ok) = _fast_and_dense(
        module, img, cap, return_correct=True
    )
    torch.testing.assert_close(f_logit, d_logit, atol=100 * TOL[dtype], rtol=0)
    assert torch.equal(f_ok, d_ok) and 0 < f_ok.sum() < 20


@pytest.mark.parametrize("hidden", [0, 12])
def test_posterior_head_in_caption_mode_and_gradients(hidden):
    torch.manual_seed(0)
    module = ViLUModule(
        16, hidden_layer_sizes=(8,), posterior_head=True, posterior_hidden_size=hidden
    ).train()
    img, cap = torch.randn(12, 16), torch.randn(12, 16)
    logits, correct = module(img, cap, return_correct=True)
    logits.sum().backward()
    assert module.posterior.img.weight.grad is not None
    assert float(module.posterior.img.weight.grad.abs().sum()) > 0
    assert logits.shape == correct.shape == (12,)


def test_posterior_head_with_a_hidden_layer_learns_no_text_map():
    head = PosteriorHead(16, 20.0, hidden_size=12)
    assert head.txt is None and head.hidden is not None
    assert head.img.weight.shape == (16, 12)
    t = torch.randn(3, 16)
    assert head.tabulate(t) is None  # its query is cheaper than (K, 12) keys
    with torch.no_grad():
        head.img.weight.normal_()
        z = torch.nn.functional.normalize(torch.randn(5, 16), dim=1)
        g = head.candidate_logits(z, t, z @ t.T)
        torch.testing.assert_close(head.query(z) @ t.T, g)
    # an old pickle (no hidden layer attribute) still loads as a linear head
    state = PosteriorHead(16, 20.0).__dict__.copy()
    state["_modules"] = {k: v for k, v in state["_modules"].items() if k != "hidden"}
    old = PosteriorHead.__new__(PosteriorHead)
    old.__setstate__(state)
    assert old.hidden is None and old.features(t) is t


@pytest.mark.parametrize("scale", [100.0, 1e4, 1e6])
def test_posterior_head_keeps_ranking_at_a_large_logit_scale(scale):
    # issue 18, defect 8: the head's logit was capped at 100, so at
    # logit_scale 1e4 nearly every image got the same score (AUROC 0.69 ->
    # 0.5 at 1e5); it is now exact, in float32 as in float64
    torch.manual_seed(0)
    img, txt = torch.randn(64, 16), torch.randn(7, 16)
    module = ViLUModule(16, hidden_layer_sizes=(8,), posterior_head=True)
    module.logit_scale = module.posterior.logit_scale = scale
    module = module.eval()
    z64 = torch.nn.functional.normalize(img.double(), dim=1)
    t64 = torch.nn.functional.normalize(txt.double(), dim=1)
    g = scale * (z64 @ t64.T)
    k = g.argmax(dim=1, keepdim=True)
    rest = torch.logsumexp(g.scatter(1, k, float("-inf")), dim=1)
    expected = g.gather(1, k).squeeze(1) - rest  # exact logit of MSP
    z, t = z64.float(), t64.float()
    with torch.no_grad():
        got = module.posterior(z, t, z @ t.T).double()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3 * scale / 100)
    assert len(torch.unique(got)) == 64  # every image its own score
    fast, dense = _fast_and_dense(module, img, txt)
    torch.testing.assert_close(fast, dense, rtol=1e-4, atol=1e-3 * scale / 100)
