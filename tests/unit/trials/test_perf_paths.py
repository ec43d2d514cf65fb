"""The fast paths give the same numbers as the plain algorithm: compiled vs eager clustering, the
masked border, odd shapes and memory layouts, and the measurement helpers the benchmarks use.

Correctness only: no timing is asserted anywhere (timings belong in `python -m benchmarks`).
"""

import pytest
import torch
import torch.nn.functional as F

from helpers import run_with_grad
from trials import create_model
from trials.measure import environment, measure_speed, peak_memory_bytes, ratio_of_medians, time_interleaved
from trials.measure.timing import Timing, summarize
from trials.models.clustering import SuperTokenClustering
import vocab
from trials.models.clustering import (
    compiled_clustering,
    fold_index,
    fold_neighbours,
    neighbours,
    super_token_clustering,
)


def step_by_step_reference(x, grid, iters, mask_border=False, eps=1e-12):
    """STViT's algorithm written out with F.unfold / F.fold; mask_border keeps zero-padded neighbours
    out of the softmax. Affinities see detached inputs, so the gradient flows through the last mean only."""
    b, c, height, width = x.shape
    hh, ww = height // grid, width // grid
    pixel = x.reshape(b, c, hh, grid, ww, grid).permute(0, 2, 4, 3, 5, 1).reshape(b, hh * ww, grid * grid, c)
    outside = F.unfold(torch.ones(1, 1, hh, ww, dtype=x.dtype), 3, padding=1).reshape(9, hh * ww).t() == 0
    stoken = F.adaptive_avg_pool2d(x, (hh, ww))
    for _ in range(iters):
        near = F.unfold(stoken.detach(), 3, padding=1).reshape(b, c, 9, hh * ww).permute(0, 3, 1, 2)
        logits = (pixel.detach() @ near) * c**-0.5
        if mask_border:
            logits = logits.masked_fill(outside[None, :, None, :], float("-inf"))
        affinity = logits.softmax(-1)
        weighted = (pixel.transpose(-1, -2) @ affinity).permute(0, 2, 3, 1).reshape(b, c * 9, hh * ww)
        total = affinity.sum(2).transpose(1, 2).reshape(b, 9, hh * ww)
        fold = lambda t, ch: F.fold(t, (hh, ww), 3, padding=1).reshape(b, ch, hh, ww)  # noqa: E731
        stoken = fold(weighted, c) / (fold(total, 1) + eps)
    return stoken


@pytest.mark.parametrize("grid,iters,shape", [(2, 3, (2, 8, 12, 12)), (2, 2, (1, 5, 8, 12)), (4, 1, (2, 3, 16, 8))])
def test_masked_border_matches_step_by_step_reference(grid, iters, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    weight = torch.randn(shape[0], shape[1], shape[2] // grid, shape[3] // grid, dtype=torch.float64)
    out, grad = run_with_grad(SuperTokenClustering(grid, iters, mask_border=True), x, weight)
    ref_out, ref_grad = run_with_grad(lambda z: step_by_step_reference(z, grid, iters, True), x, weight)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape,grid", [((1, 4, 6, 10), 2), ((3, 2, 9, 3), 3), ((2, 3, 4, 4), 4)])
def test_non_square_and_single_cell_maps_match_the_reference(shape, grid):
    torch.manual_seed(1)
    x = torch.randn(*shape, dtype=torch.float64)
    weight = torch.randn(shape[0], shape[1], shape[2] // grid, shape[3] // grid, dtype=torch.float64)
    out, grad = run_with_grad(SuperTokenClustering(grid, 2), x, weight)
    ref_out, ref_grad = run_with_grad(lambda z: step_by_step_reference(z, grid, 2), x, weight)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-10)


def test_channels_last_input_gives_the_same_output_and_gradient():
    torch.manual_seed(2)
    x = torch.randn(2, 6, 8, 8)
    weight = torch.randn(2, 6, 4, 4)
    module = SuperTokenClustering(2, 3)
    out, grad = run_with_grad(module, x, weight)
    out_cl, grad_cl = run_with_grad(module, x.contiguous(memory_format=torch.channels_last), weight)
    torch.testing.assert_close(out, out_cl)
    torch.testing.assert_close(grad, grad_cl)


def test_fold_is_the_adjoint_of_the_neighbourhood_gather():
    # <neighbours(t), u> == <t, fold(u)> for any t, u: the backward relies on it
    torch.manual_seed(3)
    t = torch.randn(2, 5, 7, 3, dtype=torch.float64)
    u = torch.randn(2 * 5 * 7, 9, 3, dtype=torch.float64)
    lhs = (neighbours(t) * u).sum()
    rhs = (t * fold_neighbours(u, fold_index(2, 5, 7, t.device), 2, 5, 7)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_inference_mode_and_no_grad_inputs_work():
    x = torch.randn(1, 4, 8, 8)
    with torch.inference_mode():
        out = SuperTokenClustering(2, 2)(x)
    torch.testing.assert_close(out, SuperTokenClustering(2, 2)(x))


def test_fused_option_picks_compile_only_where_asked():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not SuperTokenClustering(fused="auto").uses_compile(cpu)
    assert SuperTokenClustering(fused="auto").uses_compile(cuda)
    assert SuperTokenClustering(fused=True).uses_compile(cpu)
    assert not SuperTokenClustering(fused=False).uses_compile(cuda)
    with pytest.raises(ValueError, match="fused"):
        SuperTokenClustering(fused="yes")


@pytest.mark.parametrize("mask_border", [False, True])
def test_traced_graph_matches_eager_forward_and_backward(mask_border):
    # aot_eager: the same capture torch.compile does on CUDA (whole Function, fullgraph), without codegen
    torch.manual_seed(4)
    x = torch.randn(2, 8, 12, 12)
    weight = torch.randn(2, 8, 6, 6)
    compiled = compiled_clustering("aot_eager")
    out, grad = run_with_grad(lambda z: compiled(z, 2, 3, mask_border), x, weight)
    ref_out, ref_grad = run_with_grad(lambda z: super_token_clustering(z, 2, 3, mask_border), x, weight)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(grad, ref_grad)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_auto_path_matches_cpu_under_bf16_autocast():
    torch.manual_seed(6)
    x = torch.randn(4, 16, 28, 28)
    weight = torch.randn(4, 16, 14, 14)
    ref_out, ref_grad = run_with_grad(SuperTokenClustering(2, 3), x, weight)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out, grad = run_with_grad(SuperTokenClustering(2, 3), x.cuda().bfloat16(), weight.cuda())
    torch.testing.assert_close(out.float().cpu(), ref_out, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(grad.float().cpu(), ref_grad, rtol=2e-2, atol=2e-2)


# --- the measurement helpers ---


def test_peak_memory_counts_what_is_held_at_once():
    def fn():
        a = torch.ones(1024, 1024)  # 4 MiB
        b = torch.ones(2048, 1024)  # 8 MiB, while a is alive
        del a, b
        torch.ones(1024, 1024)  # 4 MiB, after both are freed

    peak = peak_memory_bytes(fn)
    assert 12 * 2**20 <= peak < 13 * 2**20


def test_speed_figures_carry_the_names_vocab_declares():
    """One measurement serves a trial's final metrics and `tokensweep bench`: vocab's names, the step
    details beside them, the environment."""
    model, cpu = create_model("vit_tiny_patch"), torch.device("cpu")
    both = measure_speed(model, model.spec.img_size, 2, cpu, "fp32", threads=1, warmup=0, steps=1)
    infer_only = measure_speed(model, model.spec.img_size, 2, cpu, "fp32", threads=1, warmup=0, steps=1, train=False)
    env = set(environment(cpu, "fp32", 2))
    details = {"infer_step_s", "infer_spread", "train_step_s", "train_spread"}
    assert set(both) - env - details == {"images_per_sec", "train_images_per_sec"} <= set(vocab.FINAL_METRICS)
    assert both["images_per_sec"] > 0 and both["train_images_per_sec"] > 0 and both["threads"] == 1
    assert set(infer_only) - env == {"images_per_sec", "infer_step_s", "infer_spread"}  # no peak memory on CPU


def test_time_interleaved_alternates_variants_and_times_each():
    order = []
    fns = {name: (lambda n=name: order.append(n)) for name in ("a", "b", "c")}
    timings = time_interleaved(fns, torch.device("cpu"), warmup=1, steps=3)
    assert set(timings) == {"a", "b", "c"} and all(t.steps == 3 for t in timings.values())
    assert order == ["a", "b", "c"] + ["a", "b", "c"] + ["b", "c", "a"] + ["c", "a", "b"]


def test_summary_and_ratio():
    t = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (t.median_s, t.p25_s, t.p75_s, t.steps, t.min_s) == (3.0, 2.0, 4.0, 5, 1.0)
    assert ratio_of_medians(Timing(4.0, 4.0, 4.0, 1), Timing(1.0, 1.0, 1.0, 1)) == 4.0
