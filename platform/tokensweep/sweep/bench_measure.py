"""The bench's measurement: every architecture of a sweep, side by side, in one process on one device.

It is the trials' own timing protocol (`trials.measure`: `make_inference_step`, the inference-ready
copy of the model, and `time_interleaved`), repeated: each repeat warms up, then alternates the
architectures step by step (in rotated order) for `steps` timed steps each, so a slow spell of the
machine hits every architecture alike. A repeat's figure is its fastest step (`Timing.min_s`): other
programs on the machine only ever add time to a step - on a loaded 2-core machine a 3 ms step is
preempted for a 4 ms scheduler tick more often than not, which makes its median a measure of the
load, not of the model (1 vs 3 clustering iterations came out 2x apart either way) - while the
fastest of 30 steps is what the model costs (the minimum as the robust estimator in noisy
environments: Chen & Revels 2016, timeit). The repeat's median step is kept in the table beside it.
The bench figure is the median over repeats, with the order-statistic 95% interval of that median
(tokensweep.sweep.median_interval).

CPU steps run with the trials' own torch thread count (the same figure the trials measured, now
without other trials beside it), in a process that holds every CPU of its node, so the cores it does
not use stay idle for the OS and other programs rather than interrupting its steps.

Runs in a Ray task on a cluster (`tokensweep.sweep.bench_stage`) or in the `tokensweep bench --sweep`
process; no Ray or MLflow here, torch only once called.
"""

from __future__ import annotations

import socket
import time

from tokensweep.sweep.architectures import Architecture
from tokensweep.sweep.median_interval import METHOD, median_interval

WARMUP = 5  # untimed rounds per repeat: first-call costs (allocations, oneDNN primitives, CUDA kernels) stay out


def measure(archs: list[dict], settings: dict, plugins: tuple[str, ...] = ()) -> dict:
    """The bench table: per architecture, every repeat's images/sec, their median and its interval.

    settings: device (auto|cpu|cuda), batch (None: each architecture's bench_batch), repeats, steps,
    threads (None: the architectures' own; torch's when they have none).
    """
    import trials
    from trials.measure import cpu_threads, environment, make_inference_step, resolve_device, resolve_precision, time_interleaved

    for module in plugins:  # the user's embeddings, as the trials loaded them
        trials.load_plugin(module)
    architectures = [Architecture.from_json(a) for a in archs]
    device = resolve_device(settings.get("device", "auto"))
    threads = settings.get("threads") or max((a.threads or 0 for a in architectures), default=0) or None
    started = time.time()
    with cpu_threads(threads if device.type == "cpu" else None):
        steps, batches, precisions = {}, {}, {}
        for arch in architectures:
            model = trials.create_model(arch.model, **arch.model_overrides()).to(device)
            batches[arch.arch_id] = settings.get("batch") or arch.bench_batch
            precisions[arch.arch_id] = resolve_precision(arch.precision, device)
            steps[arch.arch_id] = make_inference_step(model, arch.img_size, batches[arch.arch_id], device, precisions[arch.arch_id])
        figures: dict[str, list[float]] = {a: [] for a in steps}
        medians: dict[str, list[float]] = {a: [] for a in steps}
        for _ in range(settings["repeats"]):
            timings = time_interleaved(steps, device, warmup=WARMUP, steps=settings["steps"])
            for arch_id, timing in timings.items():
                figures[arch_id].append(batches[arch_id] / timing.min_s)
                medians[arch_id].append(timing.per_sec(batches[arch_id]))
        env = environment(device, "fp32", 0)
    rows = []
    for arch in architectures:
        interval = median_interval(figures[arch.arch_id])
        rows.append({
            "arch_id": arch.arch_id, "label": arch.label, "model": arch.model, "img_size": arch.img_size,
            "knobs": arch.knobs, "precision": precisions[arch.arch_id], "batch": batches[arch.arch_id],
            "images_per_sec": interval.median, "ci_low": interval.low, "ci_high": interval.high,
            "coverage": interval.coverage, "repeat_images_per_sec": figures[arch.arch_id],
            "repeat_median_step_images_per_sec": medians[arch.arch_id],
        })  # fmt: skip
    return {
        "device": env["device"],
        "device_type": device.type,
        "threads": env["threads"],
        "torch_version": env["torch_version"],
        "hostname": socket.gethostname(),
        "repeats": settings["repeats"],
        "steps": settings["steps"],
        "warmup": WARMUP,
        "interval": METHOD,
        "started_at": started,
        "ended_at": time.time(),
        "rows": rows,
    }
