"""How fast one trial's architecture trains here: the figures a sweep's cost plan is built from.

Timed with the one timing protocol (trials.measure.timing) at the trial's batch, precision and
threads: a training step (forward, backward, gradient clip, AdamW), an evaluation step, and the
training loader's rate on the trial's own data with its workers. A step takes the slower of
compute and loading when workers load in the background, their sum when the trial loads in its
own process (workers = 0). Also timed once: building the data and the model (a trial's set-up)
and the final measurement. Torch only, so the GPU check uses it as the sweep's planner does.
"""

import itertools
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from trials.config import TrialConfig
from trials.data import build_loaders
from trials.measure.calibration import Calibration
from trials.measure.counts import model_counts
from trials.measure.env import device_name, resolve_device, resolve_precision
from trials.measure.throughput import autocast, measure_speed
from trials.measure.timing import cpu_threads, time_steps
from trials.models.factory import build_model

WARMUP_STEPS = 2
TIMED_STEPS = 5
LOADER_BATCHES = 5  # timed after the first (whose workers' start is set-up)


def calibrate(config: TrialConfig) -> Calibration:
    """Time `config`'s training and loading where its trial would run (its device, threads and data)."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    # no more threads than this machine has cores: a spec written for a larger node is timed as this one runs it
    threads_here = min(config.threads, os.cpu_count() or 1) if config.threads else None
    with cpu_threads(threads_here) as threads:
        started = time.perf_counter()
        train_loader, val_loader, num_classes = build_loaders(config, device)
        model = build_model(config.spec.with_classes(num_classes)).to(device)
        setup_s = time.perf_counter() - started
        loader_rate = _loader_images_per_sec(train_loader, config.batch_size)
        x = torch.randn(config.batch_size, 3, model.spec.img_size, model.spec.img_size, device=device)
        y = torch.randint(0, num_classes, (config.batch_size,), device=device)
        train = time_steps(_train_step(model, x, y, config, device, precision), device, WARMUP_STEPS, TIMED_STEPS)
        evaluate = time_steps(_eval_step(model, x, device, precision), device, WARMUP_STEPS, TIMED_STEPS)
        measure_s = _measure_s(model, config, device, precision) if config.measure else 0.0
    return Calibration(
        device=device_name(device),
        batch=config.batch_size,
        precision=precision,
        threads=threads,
        workers=config.loader_workers,
        train_images_per_sec=train.per_sec(config.batch_size),
        eval_images_per_sec=evaluate.per_sec(config.batch_size),
        loader_images_per_sec=loader_rate,
        setup_s=setup_s,
        measure_s=measure_s,
        train_images=len(train_loader.loader.dataset),
        val_images=len(val_loader.loader.dataset),
    )


def _loader_images_per_sec(loader, batch: int) -> float:
    batches = iter(loader)
    next(batches)  # workers started, first batch decoded: set-up, not the rate
    started = time.perf_counter()
    count = sum(1 for _ in itertools.islice(batches, LOADER_BATCHES))
    if count == 0:  # a train split of one batch: its rate is the first batch's
        return batch / max(time.perf_counter() - started, 1e-9)
    return count * batch / (time.perf_counter() - started)


def _train_step(model: nn.Module, x, y, config: TrialConfig, device, precision):
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step():
        with autocast(device, precision):
            loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
        scaler.scale(loss).backward()
        if config.clip_grad is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    return step


def _eval_step(model: nn.Module, x, device, precision):
    def step():
        with torch.no_grad(), autocast(device, precision):
            model(x)

    model.eval()
    return step


def _measure_s(model, config: TrialConfig, device, precision) -> float:
    """What the trial's last epoch adds: its counts and speed measurement (trials.train.loop.measure_model)."""
    started = time.perf_counter()
    model_counts(model, model.spec.img_size, device)
    measure_speed(model, model.spec.img_size, config.bench_batch, device, precision, steps=config.bench_steps)
    return time.perf_counter() - started
