"""The compiled clustering (fused="auto" on CUDA) in the ways one process uses it, on CPU.

A counting backend stands in for Inductor: torch.compile captures the same graph (the whole
autograd.Function, fullgraph) and guards the same way, without code generation, so what breaks
here breaks on a GPU. Correctness only; no timing.
"""

import pytest
import torch
from torch import nn

from trials.measure import flops_per_image
from trials.models.clustering import compiled_clustering, super_token_clustering


class CompileCounter:
    """A torch.compile backend that runs the captured graph as is and counts the graphs it was given."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return graph_module.forward


class Clustering(nn.Module):
    """An image model that is only the clustering (grid 2, iters 3), compiled with `backend` or eager."""

    def __init__(self, backend=None):
        super().__init__()
        self.fn = super_token_clustering if backend is None else compiled_clustering(backend)

    def forward(self, x):
        return self.fn(x, 2, 3, False)


def test_counting_flops_leaves_the_clustering_compiled():
    # Under the FLOP counter's dispatch mode torch.compile cannot run: torch 2.13 raised, and 2.11 ran
    # eagerly and stopped compiling the function for the rest of the process.
    backend = CompileCounter()
    model = Clustering(backend)
    model(torch.randn(2, 3, 8, 8))
    assert backend.graphs == 1
    assert flops_per_image(model, 8) == flops_per_image(Clustering(), 8) > 0
    compiled_clustering(backend)(torch.randn(2, 3, 8, 8), 2, 2, False)  # a new configuration
    assert backend.graphs == 2


def test_one_process_compiles_every_configuration_it_meets():
    # iters 1-3 x training / no_grad / inference_mode: 9 graphs, one beyond torch's default of 8 per
    # function, which fullgraph=True turns into an error (a trial alone needs ~5: batch sizes change too)
    backend = CompileCounter()
    fn = compiled_clustering(backend)
    torch.manual_seed(0)
    for iters in (1, 2, 3):
        x = torch.randn(2, 4, 8, 8)
        expected = super_token_clustering(x, 2, iters)
        z = x.clone().requires_grad_(True)
        fn(z, 2, iters, False).sum().backward()
        assert z.grad is not None
        with torch.no_grad():
            torch.testing.assert_close(fn(x, 2, iters, False), expected)
        with torch.inference_mode():
            torch.testing.assert_close(fn(x, 2, iters, False), expected)
    assert backend.graphs == 9


@pytest.fixture(autouse=True)
def fresh_compile_caches():
    """Each test starts with no compiled variants (they are kept per function, process-wide)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
