"""The one timing protocol every speed figure in tokensweep uses (timm's benchmark, written once).

Warm-up steps, then timed steps each bracketed by device synchronisation; the median is the
figure and the inter-quartile range its spread. Inputs are fresh random tensors made once
(a fixed synthetic batch), never zeros, which some kernels special-case.
"""

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    median_s: float
    p25_s: float
    p75_s: float
    steps: int

    def per_sec(self, items: int) -> float:
        """Items per second at the median step time."""
        return items / self.median_s

    @property
    def spread(self) -> float:
        """Inter-quartile range relative to the median (0.05 = +-5%-ish noise)."""
        return (self.p75_s - self.p25_s) / self.median_s


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(fn: Callable[[], object], device: torch.device, warmup: int = 3, steps: int = 10) -> Timing:
    """Run fn `warmup` times untimed, then `steps` times timed; return the median and quartiles."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append(time.perf_counter() - start)
    if len(samples) == 1:
        return Timing(samples[0], samples[0], samples[0], 1)
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return Timing(q2, q1, q3, len(samples))


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[int]:
    """Fix torch's CPU thread count for the duration (None: leave as is); yields the count in force."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
