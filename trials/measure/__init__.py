"""Measurement: parameters, FLOPs, images/sec, peak memory, energy, and the environment of each figure."""

from trials.measure.counts import count_flops, count_params, flops_per_image, model_counts
from trials.measure.env import device_name, environment, resolve_device, resolve_precision
from trials.measure.memory import peak_memory_bytes
from trials.measure.throughput import (
    Throughput,
    inference_throughput,
    make_inference_step,
    make_train_step,
    measure_speed,
    train_throughput,
)
from trials.measure.timing import Timing, cpu_threads, ratio_of_medians, time_interleaved, time_steps

__all__ = [
    "Throughput",
    "Timing",
    "count_flops",
    "count_params",
    "cpu_threads",
    "device_name",
    "environment",
    "flops_per_image",
    "inference_throughput",
    "make_inference_step",
    "make_train_step",
    "measure_speed",
    "model_counts",
    "peak_memory_bytes",
    "ratio_of_medians",
    "resolve_device",
    "resolve_precision",
    "time_interleaved",
    "time_steps",
    "train_throughput",
]
