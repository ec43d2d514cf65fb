"""The fast path compiled by Inductor gives the same numbers as eager clustering (the other fast paths:
tests/unit/trials/test_perf_paths.py).

Correctness only: no timing is asserted anywhere (timings belong in `python -m benchmarks`).
"""

import torch

from helpers import run_with_grad
from trials.models.clustering import SuperTokenClustering


def test_inductor_compiled_module_matches_eager():
    # The fused=True path end to end with Inductor (C++ codegen on CPU: minutes to compile here)
    torch.manual_seed(5)
    x = torch.randn(2, 8, 12, 12)
    weight = torch.randn(2, 8, 6, 6)
    out, grad = run_with_grad(SuperTokenClustering(2, 3, fused=True), x, weight)
    ref_out, ref_grad = run_with_grad(SuperTokenClustering(2, 3, fused=False), x, weight)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)
