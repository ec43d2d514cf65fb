"""Inference and training images/sec of a model, measured with the one timing protocol.

A fixed synthetic batch of random images, warm-up, device synchronisation, the median over
timed steps, a fixed CPU thread count; peak device memory and (where NVML exposes it) energy
per image on CUDA. Both are measured on copies of the model, so a measurement never changes
the caller's model: inference on its inference-ready copy (eval mode, BatchNorm folded into the
convolutions, as deployed), training on a plain copy so trained weights stay as they were.
"""

import contextlib
import copy
from dataclasses import dataclass

import torch
from torch import nn

from trials.measure.energy import EnergyMeter
from trials.measure.env import environment
from trials.measure.inference_ready import inference_ready
from trials.measure.memory import cuda_peak
from trials.measure.timing import Timing, cpu_threads, time_steps

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

RATES = {"infer": "images_per_sec", "train": "train_images_per_sec"}  # vocab's names of the two rates


@dataclass(frozen=True)
class Throughput:
    images_per_sec: float
    step_s: float
    spread: float  # inter-quartile range / median
    peak_mem_mb: float | None
    joules_per_image: float | None

    @classmethod
    def from_timing(cls, t: Timing, batch: int, peak_mem_mb, joules) -> "Throughput":
        return cls(t.per_sec(batch), t.median_s, t.spread, peak_mem_mb, joules)


def autocast(device: torch.device, precision: str):
    dtype = PRECISION_DTYPES[precision]
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)


def _measure(step, device: torch.device, batch: int, warmup: int, steps: int) -> Throughput:
    memory = cuda_peak(device) if device.type == "cuda" else contextlib.nullcontext()
    meter = EnergyMeter(device)
    with memory as peak, meter:
        timing = time_steps(step, device, warmup=warmup, steps=steps)
    peak_mb = peak.peak / 2**20 if peak is not None else None  # the whole peak, the model's weights included
    joules = meter.joules / (batch * (warmup + steps)) if meter.joules is not None else None
    return Throughput.from_timing(timing, batch, peak_mb, joules)


def make_inference_step(model: nn.Module, img_size: int, batch: int, device: torch.device, precision: str):
    """The timed inference call on the model's inference-ready copy: a fixed random batch, inference mode, autocast."""
    model = inference_ready(model, precision)
    x = torch.randn(batch, 3, img_size, img_size, device=device)

    def step():
        with torch.inference_mode(), autocast(device, precision):
            model(x)

    return step


def make_train_step(model: nn.Module, img_size: int, batch: int, device: torch.device, precision: str):
    """The timed training call: forward, backward and an AdamW step on a copy of the model."""
    model = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    num_classes = model.head.out_features if hasattr(model, "head") else 1000
    x = torch.randn(batch, 3, img_size, img_size, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        with autocast(device, precision):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def inference_throughput(
    model: nn.Module, img_size: int, batch: int, device: torch.device, precision: str, warmup: int = 3, steps: int = 10
) -> Throughput:
    """Images/sec of the model's inference-ready copy (eval mode, BatchNorm folded into convolutions)."""
    return _measure(make_inference_step(model, img_size, batch, device, precision), device, batch, warmup, steps)


def train_throughput(
    model: nn.Module, img_size: int, batch: int, device: torch.device, precision: str, warmup: int = 3, steps: int = 10
) -> Throughput:
    """Forward, backward and an AdamW step on a copy of the model."""
    return _measure(make_train_step(model, img_size, batch, device, precision), device, batch, warmup, steps)


def measure_speed(
    model: nn.Module,
    img_size: int,
    batch: int,
    device: torch.device,
    precision: str,
    threads: int | None = None,
    warmup: int = 3,
    steps: int = 10,
    train: bool = True,
) -> dict:
    """A model's speed figures under vocab's names, and the environment they were measured in.

    images_per_sec (inference) and train_images_per_sec; peak_mem_mb (CUDA: the training step's, the
    inference step's when training is not timed) and joules_per_image (NVML: inference) where measured;
    the details infer_step_s, infer_spread, train_step_s, train_spread; trials.measure.environment.
    """
    with cpu_threads(threads if device.type == "cpu" else None):
        timed = {"infer": inference_throughput(model, img_size, batch, device, precision, warmup, steps)}
        if train:
            timed["train"] = train_throughput(model, img_size, batch, device, precision, warmup, steps)
        figures = environment(device, precision, batch)
    for kind, t in timed.items():
        figures.update({RATES[kind]: t.images_per_sec, f"{kind}_step_s": t.step_s, f"{kind}_spread": t.spread})
    peak, joules = timed.get("train", timed["infer"]).peak_mem_mb, timed["infer"].joules_per_image
    figures.update({k: v for k, v in (("peak_mem_mb", peak), ("joules_per_image", joules)) if v is not None})
    return figures
