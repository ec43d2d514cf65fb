"""Measurement: parameters, FLOPs, images/sec, peak memory, energy, and the environment of each figure.

Importing `trials.measure` (or its plain-Python modules: calibration, env) loads no torch, so a sweep's
driver plans from a cached calibration without it; each name below loads its module on first use.
"""

import importlib

_MODULE_OF = {
    "count_flops": "counts",
    "count_params": "counts",
    "flops_per_image": "counts",
    "model_counts": "counts",
    "device_name": "env",
    "environment": "env",
    "resolve_device": "env",
    "resolve_precision": "env",
    "peak_memory_bytes": "memory",
    "Throughput": "throughput",
    "inference_throughput": "throughput",
    "make_inference_step": "throughput",
    "make_train_step": "throughput",
    "measure_speed": "throughput",
    "train_throughput": "throughput",
    "Timing": "timing",
    "cpu_threads": "timing",
    "ratio_of_medians": "timing",
    "time_interleaved": "timing",
    "time_steps": "timing",
}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'trials.measure' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"trials.measure.{module}"), name)
    globals()[name] = value  # once
    return value


__all__ = sorted(_MODULE_OF)
