"""The inference-ready copy that inference measurements time: same outputs as the model in eval
mode, BatchNorm folded away, and the caller's model left exactly as it was.

Correctness only: no timing is asserted (timings belong in `python -m benchmarks`).
"""

import pytest
import torch
from torch import nn

from trials import create_model
from trials.measure import make_inference_step
from trials.measure.inference_ready import (
    OneDnnLinear,
    fold_batchnorm,
    inference_ready,
    onednn_linear_available,
)

NAMES = ["vit_tiny_patch", "vit_tiny_conv", "vit_tiny_supertoken", "vit_s_conv", "vit_s_supertoken"]


def with_trained_batchnorm_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so that folding has something to fold."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("name", NAMES)
def test_folded_copy_gives_the_models_eval_outputs(name):
    torch.manual_seed(0)
    img_size = 64 if name.startswith("vit_s") else 32  # ViT-S at 64 px: same layers, 1/12 of the work
    model = with_trained_batchnorm_statistics(create_model(name, img_size=img_size, num_classes=10)).eval()
    x = torch.randn(4, 3, img_size, img_size)
    ready = inference_ready(model)
    with torch.inference_mode():
        expected, folded = model(x), ready(x)
    # Folding (scale the weights, then convolve) and oneDNN's GEMM and erf-GELU reorder fp32
    # arithmetic; through 12 blocks the differences measured <= 1.3e-6 on outputs of size ~1, so
    # 1e-4 leaves ~100x margin and still catches any real mistake (a skipped or double-applied BN,
    # a lost bias or GELU, shifts outputs by O(0.1)).
    torch.testing.assert_close(folded, expected, rtol=1e-4, atol=1e-4)
    assert count_batchnorms(ready) == 0


def test_fold_is_exact_in_float64():  # float64 also takes OneDnnLinear's F.linear fallback
    torch.manual_seed(1)
    model = with_trained_batchnorm_statistics(create_model("vit_tiny_supertoken", img_size=32)).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.inference_mode():
        torch.testing.assert_close(inference_ready(model)(x), model(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["vit_tiny_conv", "vit_tiny_supertoken"])
def test_callers_model_is_untouched(name):
    model = with_trained_batchnorm_statistics(create_model(name, img_size=32)).train()
    before, batchnorms = snapshot(model), count_batchnorms(model)
    ready = inference_ready(model)
    make_inference_step(model, 32, 2, torch.device("cpu"), "fp32")()
    assert model.training and all(m.training for m in model.modules())
    assert count_batchnorms(model) == batchnorms > 0
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert not any(p.data_ptr() == q.data_ptr() for p in model.parameters() for q in ready.parameters())
    assert not ready.training


def test_only_conv_then_batchnorm_pairs_with_running_statistics_are_folded():
    seq = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),  # folded
        nn.ReLU(),
        nn.BatchNorm2d(4),  # no conv before it: kept
        nn.Conv2d(4, 4, 1),
        nn.BatchNorm2d(4, track_running_stats=False),  # batch statistics even in eval: kept
    ).eval()
    assert fold_batchnorm(seq) == 1
    assert [type(m) for m in seq] == [nn.Conv2d, nn.Identity, nn.ReLU, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d]


needs_onednn = pytest.mark.skipif(not onednn_linear_available(torch.device("cpu")), reason="needs oneDNN")


@needs_onednn
def test_linears_and_linear_gelu_pairs_become_onednn_calls_on_cpu_fp32_only():
    model = create_model("vit_tiny_patch", img_size=32)
    ready = inference_ready(model)
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert sum(isinstance(m, OneDnnLinear) for m in ready.modules()) == linears
    assert not any(isinstance(m, (nn.Linear, nn.GELU)) for m in ready.modules())
    assert sum(getattr(m, "gelu", False) for m in ready.modules()) == len(model.blocks)
    assert ready.state_dict().keys() == model.state_dict().keys()
    bf16 = inference_ready(model, precision="bf16")
    assert not any(isinstance(m, OneDnnLinear) for m in bf16.modules())


@needs_onednn
@pytest.mark.parametrize("gelu", [False, True])
def test_onednn_linear_matches_linear_and_falls_back_where_it_must(gelu):
    torch.manual_seed(3)
    lin = nn.Linear(24, 40)
    reference = nn.Sequential(lin, nn.GELU()) if gelu else lin
    fused = OneDnnLinear(lin, gelu=gelu)
    x = torch.randn(2, 5, 24)
    with torch.inference_mode():  # fast path
        torch.testing.assert_close(fused(x), reference(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fused(x[:, 1]), reference(x[:, 1]), rtol=1e-5, atol=1e-6)  # strided input
    grad = torch.randn(2, 5, 40)
    (fused(x) * grad).sum().backward()  # autograd: the F.linear fallback
    fused_grad, lin.weight.grad = lin.weight.grad, None
    (reference(x) * grad).sum().backward()
    torch.testing.assert_close(fused_grad, lin.weight.grad)
