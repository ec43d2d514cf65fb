"""Peak memory of one call: the most bytes held by tensors at once, above what was live before.

CUDA: the caching allocator's own counters (`max_memory_allocated`). CPU has no such counter,
so we replay the allocator's event trace from torch.profiler (profile_memory=True records every
tensor allocation and free, as tracemalloc does for Python objects): the running sum of
allocated minus freed bytes, and its maximum. Deterministic, and independent of how malloc
returns memory to the OS. It sees every tensor, autograd's saved tensors and gradients
included, but not scratch space a library (oneDNN, MKL) allocates outside torch's allocator.
`cuda_peak` is the CUDA half alone, for a block: the throughput measurement's peak_mem_mb.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Run fn once; return the peak of bytes allocated on `device` above the level at the start."""
    device = torch.device(device)
    if device.type == "cuda":
        with cuda_peak(device) as peak:
            fn()
        return peak.above_start
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return peak_from_trace(prof.profiler.kineto_results.events())


@dataclass
class CudaPeak:
    start: int  # bytes allocated when the block began
    peak: int = 0  # the most bytes allocated at once during the block (what was there before included)

    @property
    def above_start(self) -> int:
        return self.peak - self.start


@contextlib.contextmanager
def cuda_peak(device: torch.device) -> Iterator[CudaPeak]:
    """The CUDA caching allocator's peak over the block; `.peak` is set when the block ends."""
    torch.cuda.synchronize(device)
    result = CudaPeak(torch.cuda.memory_allocated(device))
    torch.cuda.reset_peak_memory_stats(device)
    yield result
    torch.cuda.synchronize(device)
    result.peak = torch.cuda.max_memory_allocated(device)


def peak_from_trace(events) -> int:
    """Replay CPU '[memory]' events (nbytes > 0: allocation, < 0: free) in time order."""
    memory = [e for e in events if e.name() == "[memory]" and e.device_type() == DeviceType.CPU]
    live = peak = 0
    for event in sorted(memory, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak
