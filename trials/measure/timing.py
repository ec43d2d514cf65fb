"""The one timing protocol every speed figure in tokensweep uses (timm's benchmark, written once).

Warm-up steps, then timed steps each bracketed by device synchronisation; the median is the
figure and the inter-quartile range its spread. Inputs are fresh random tensors made once
(a fixed synthetic batch), never zeros, which some kernels special-case.

`time_interleaved` applies the same protocol to several variants at once, alternating them
step by step, so that a slow spell of a shared machine hits every variant alike and their
ratio stays fair; `ratio_of_medians` gives that ratio.
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
    min_s: float | None = None  # the fastest step: what a busy machine cannot inflate

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
    return summarize([timed_call(fn, device) for _ in range(steps)])


def time_interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device, warmup: int = 2, steps: int = 10
) -> dict[str, Timing]:
    """time_steps for several variants, alternating them: round r runs each once, in rotated order."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(steps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(timed_call(fns[name], device))
    return {name: summarize(s) for name, s in samples.items()}


def ratio_of_medians(numerator: Timing, denominator: Timing) -> float:
    """How many times longer `numerator` takes than `denominator` (a speed-up when > 1)."""
    return numerator.median_s / denominator.median_s


def timed_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds for one call of fn, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def summarize(samples: list[float]) -> Timing:
    """The median and quartiles of step times."""
    if len(samples) == 1:
        return Timing(samples[0], samples[0], samples[0], 1, samples[0])
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return Timing(q2, q1, q3, len(samples), min(samples))


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
