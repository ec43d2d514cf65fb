"""SuperTokenClustering against a straightforward re-implementation of STViT's algorithm.

The reference, `stvit_baseline` (benchmarks/clustering.py, also the clustering speed baseline),
follows hhb072/STViT's stoken_forward step by step (unfold and fold as identity convolutions over
B*C single-channel maps), written independently of the module.
"""

import pytest
import torch

from benchmarks.clustering import stvit_baseline
from trials.models.clustering import SuperTokenClustering

@pytest.mark.parametrize("grid,iters,size", [(2, 1, 8), (2, 3, 28), (4, 2, 16), (1, 2, 6), (2, 4, 12)])
def test_matches_reference_forward_and_backward(grid, iters, size):
    torch.manual_seed(0)
    x = torch.randn(2, 8, size, size, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = SuperTokenClustering(grid, iters)(x)
    ref = stvit_baseline(x_ref, grid, iters)
    # float64 on both sides: differences are rounding only, far below 1e-10
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    (ref * weight).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-10)


def test_shape_and_no_parameters():
    module = SuperTokenClustering(grid=2, iters=3)
    assert module(torch.randn(3, 5, 28, 28)).shape == (3, 5, 14, 14)
    assert sum(p.numel() for p in module.parameters()) == 0


def test_constant_map_is_a_fixed_point():
    # every pixel equals its cell mean, so every weighted mean returns the same value
    x = torch.full((1, 4, 8, 8), 0.7)
    for mask in (False, True):
        torch.testing.assert_close(SuperTokenClustering(2, 3, mask_border=mask)(x), torch.full((1, 4, 4, 4), 0.7))


def test_mask_border_changes_only_what_padding_touches():
    torch.manual_seed(1)
    x = torch.randn(2, 6, 16, 16)
    plain = SuperTokenClustering(2, 1, mask_border=False)(x)
    masked = SuperTokenClustering(2, 1, mask_border=True)(x)
    assert not torch.allclose(plain, masked)
    # with one iteration, the interior super tokens whose whole 5x5-cell support avoids the border agree
    torch.testing.assert_close(plain[..., 2:-2, 2:-2], masked[..., 2:-2, 2:-2])


def test_output_is_a_convex_combination_of_pixels():
    torch.manual_seed(2)
    x = torch.rand(2, 3, 12, 12)
    out = SuperTokenClustering(2, 3, mask_border=True)(x)
    assert out.min() >= x.min() - 1e-6 and out.max() <= x.max() + 1e-6


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_stable_under_half_precision_autocast(dtype):
    torch.manual_seed(3)
    # large activations: exp() of their affinities overflows in fp16 without the float32 path
    x = (torch.randn(2, 16, 28, 28) * 30).requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        out = SuperTokenClustering(2, 3)(x.to(dtype))
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gradient_flows_only_through_final_weighted_mean():
    # the affinity is computed without gradient: for a fixed affinity the output is linear in x,
    # so the gradient of sum(out) equals the column sums of the (detached) assignment weights
    torch.manual_seed(4)
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    out = SuperTokenClustering(2, 2)(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.allclose(grad[:, 0], grad[:, 1])  # same weights for every channel


def test_bad_arguments():
    with pytest.raises(ValueError, match="iters"):
        SuperTokenClustering(2, 0)
    with pytest.raises(ValueError, match="divisible"):
        SuperTokenClustering(2, 1)(torch.randn(1, 2, 7, 8))


def test_the_public_name_is_the_module_and_import_trials_stays_torch_free():
    import subprocess
    import sys

    import trials

    assert trials.SuperTokenClustering is SuperTokenClustering  # `from trials import SuperTokenClustering`
    code = "import sys, trials; assert 'torch' not in sys.modules; from trials import SuperTokenClustering; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        trials.nope  # noqa: B018
