"""Measurement: parameters, FLOPs, images/sec, peak memory, energy, and the environment of each figure."""

from trials.measure.counts import count_params, flops_per_image
from trials.measure.env import device_name, environment, resolve_device, resolve_precision
from trials.measure.throughput import Throughput, benchmark_model, inference_throughput, train_throughput
from trials.measure.timing import Timing, cpu_threads, time_steps

__all__ = [
    "Throughput",
    "Timing",
    "benchmark_model",
    "count_params",
    "cpu_threads",
    "device_name",
    "environment",
    "flops_per_image",
    "inference_throughput",
    "resolve_device",
    "resolve_precision",
    "time_steps",
    "train_throughput",
]
