"""The environment a figure was measured in: it travels with every number we report.

Torch is imported where a device is resolved or named, not with the module: a sweep's plan names this
machine's CPU without it (cpu_device_name), so its driver loads no torch.
"""

from __future__ import annotations

import os
import platform
from functools import cache

from trials.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA device is visible; use device 'cpu' or 'auto'")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: bf16 autocast on CUDA (the paper's GPUs), fp32 on CPU (bf16 matmuls are slow on most CPUs)."""
    if name == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return name


@cache
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_device_name()


def cpu_device_name() -> str:
    return f"cpu: {cpu_name()}"


def environment(device: torch.device, precision: str, batch_size: int) -> dict:
    """Flat, timm-style environment columns for a figure."""
    import torch

    return {
        "device": device_name(device),
        "device_type": device.type,
        "precision": precision,
        "batch_size": batch_size,
        "torch_version": str(torch.__version__),  # a plain str: TorchVersion would not load with weights_only
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count() or 0,
    }
