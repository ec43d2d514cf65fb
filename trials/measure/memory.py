"""Peak memory of one call: the most bytes held by tensors at once, above what was live before.

CUDA: the caching allocator's own counters (`max_memory_allocated`). CPU has no such counter,
so we replay the allocator's event trace from torch.profiler (profile_memory=True records every
tensor allocation and free, as tracemalloc does for Python objects): the running sum of
allocated minus freed bytes, and its maximum. Deterministic, and independent of how malloc
returns memory to the OS. It sees every tensor, autograd's saved tensors and gradients
included, but not scratch space a library (oneDNN, MKL) allocates outside torch's allocator.
"""

from collections.abc import Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Run fn once; return the peak of bytes allocated on `device` above the level at the start."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return peak_from_trace(prof.profiler.kineto_results.events())


def peak_from_trace(events) -> int:
    """Replay CPU '[memory]' events (nbytes > 0: allocation, < 0: free) in time order."""
    memory = [e for e in events if e.name() == "[memory]" and e.device_type() == DeviceType.CPU]
    live = peak = 0
    for event in sorted(memory, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak
