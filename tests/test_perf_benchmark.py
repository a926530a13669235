"""The perf benchmark's reference forward computes what the module computes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from vilu_sklearn._modules import ViLUModule

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "perf_benchmark.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("perf_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("posterior, width", [(False, 0), (True, 0), (True, 12)])
def test_straightforward_forward_is_the_dense_forward(bench, posterior, width):
    torch.manual_seed(0)
    module = ViLUModule(
        16,
        hidden_layer_sizes=(8,),
        posterior_head=posterior,
        posterior_hidden_size=width,
    )
    with torch.no_grad():
        for p in module.parameters():  # off identity and off zero, like training
            p.add_(0.2 * torch.randn(p.shape))
    module.eval().fast_inference = False
    img, txt = torch.randn(30, 16), torch.randn(11, 16)
    with torch.inference_mode():
        expected = module(img, txt)
        got = bench.straightforward_forward(module, img, txt)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_multiply_add_counts_of_the_documented_table(bench):
    """docs/scale.md quotes these per-row counts at K = 1000, batch 512."""
    assert bench.macs_per_row(1000, 512, posterior=False) == (3_260_544, 1_962_112)
    assert bench.macs_per_row(1000, 512, posterior=True) == (4_546_688, 2_474_112)
    with_hidden = bench.macs_per_row(1000, 512, posterior=True, posterior_hidden=2048)
    assert with_hidden == (5_869_696, 4_571_264)
    small, large = (bench.macs_per_row(1000, b, posterior=True) for b in (512, 4096))
    assert large[1] == small[1] and large[0] < small[0]  # projection amortised
