"""run_trial: one trial from config to final metrics, with a report hook per epoch.

The hook is how Ray Tune (or anything else) watches a trial without `trials` importing it:
`report(metrics, checkpoint_dir)` is called after every epoch with that epoch's metrics and a
directory holding its checkpoint; the last call also carries the final measurements (params,
FLOPs, images/sec, environment), so a searcher that only sees the last result sees them.
Every metric name is declared in `vocab`. `log_path` (and a checkpoint dir) get one JSON line per epoch, as DeiT's log.txt.

`step_guard()` (a context manager) is held around what keeps the trial's device busy: building its
data and model, each training step and evaluation batch (fetching the batch included), and the final
measurement; never around a report. A sweep uses it to pause the trial while another trial on its
node benches an architecture alone.
"""

import contextlib
import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import vocab
from vocab.atomic import write_text_atomic
from trials.config import TrialConfig
from trials.data import build_loaders, build_mixer, soft_cross_entropy
from trials.errors import NonFiniteLoss
from trials.measure import measure_speed, model_counts, resolve_device, resolve_precision
from trials.measure.throughput import autocast
from trials.measure.timing import cpu_threads
from trials.models.factory import build_model
from trials.train.checkpoint import check_checkpoint, save_checkpoint
from trials.train.optim import build_optimizer, lr_at, set_lr
from trials.train.progress import Progress
from trials.train.resume import restore
from trials.train.signals_held import signals_held

Report = Callable[[dict, str], None]
StepGuard = Callable[[], contextlib.AbstractContextManager]
NAN_CHECK_EVERY = 10  # steps between finiteness checks (each forces a device sync)
LOG_FILENAME = "log.jsonl"


@dataclass
class Schedule:
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_trial(
    config: TrialConfig | dict,
    report: Report | None = None,
    resume_from: str | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = True,
    log_path: str | None = None,
    step_guard: StepGuard | None = None,
) -> dict:
    """Train and evaluate one model; return the final metrics.

    resume_from: a checkpoint directory from an earlier report; training continues after its epoch.
    checkpoint_dir: where epoch checkpoints are kept (replaced atomically); default a temp dir
    that lives only for the report call. Its `log.jsonl` gets every epoch's metrics, one JSON line
    each; `log_path` names another file for them. `step_guard`: see the module's docstring.
    """
    if not isinstance(config, TrialConfig):
        config = TrialConfig.from_dict(config)
    if resume_from is not None:
        check_checkpoint(resume_from)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    if log_path is None and checkpoint_dir is not None:
        log_path = str(Path(checkpoint_dir, LOG_FILENAME))
    guard = step_guard or contextlib.nullcontext
    with cpu_threads(config.threads):
        return _train(config, device, precision, report, resume_from, checkpoint_dir, progress, log_path, guard)


def _train(config, device, precision, report, resume_from, checkpoint_dir, show_progress, log_path, guard) -> dict:
    seed_everything(config.seed)
    with guard():
        train_loader, val_loader, num_classes = build_loaders(config, device)
        model = build_model(config.spec.with_classes(num_classes)).to(device)
    optimizer = build_optimizer(model, config.lr, config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    mixer = build_mixer(config, num_classes)

    steps = min(len(train_loader), config.max_steps_per_epoch or math.inf)
    schedule = Schedule(steps, steps * config.epochs, round(config.warmup * steps))
    start_epoch, metrics = 0, {}
    if resume_from is not None:
        start_epoch, metrics = _restore(resume_from, config, model, optimizer, scaler)
    log = EpochLog(log_path, start_epoch)

    bar = Progress(config.epochs, steps, enabled=show_progress)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        bar.start_epoch(epoch)
        _reseed_shuffle(train_loader, config.seed, epoch)
        started = time.perf_counter()
        batches = GuardedLoader(train_loader, guard)
        train = train_one_epoch(model, batches, optimizer, scaler, mixer, schedule, epoch, config, device, precision, bar)
        elapsed = time.perf_counter() - started
        metrics = {
            "epoch": epoch,
            **train,
            **evaluate(model, GuardedLoader(val_loader, guard), device, precision),
            "epoch_time_s": time.perf_counter() - started,
            "train_images_per_sec_epoch": train["images"] / elapsed,
        }
        metrics.pop("images")
        if epoch == config.epochs and config.measure:
            with guard():
                metrics.update(measure_model(model, config, device, precision))
        if config.dataset != "tiny":
            metrics["bad_images"] = train_loader.bad_images + val_loader.bad_images
            metrics["data_form"] = train_loader.data_form  # "original", or a resized / pre-decoded copy
        bar.end_epoch(metrics)
        state = {
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "metrics": metrics,
            "config": config.to_dict(),
        }
        with signals_held(), _checkpoint_location(checkpoint_dir) as directory:
            save_checkpoint(directory, state)
            log.write(metrics)  # after the checkpoint it records: the log never runs ahead of what resumes
            if report is not None:
                report(dict(metrics), directory)
    return metrics


def _restore(resume_from, config, model, optimizer, scaler) -> tuple[int, dict]:
    return restore(resume_from, config, model, optimizer, scaler)  # every check first (trials/train/resume.py)


class EpochLog:
    """One JSON line per epoch (DeiT's log.txt). A resumed trial keeps the lines up to its checkpoint's
    epoch and appends after them, so the file never holds an epoch twice."""

    def __init__(self, path: str | None, start_epoch: int):
        self.path = Path(path) if path else None
        if self.path is None:
            return
        kept = [line for line in _read_lines(self.path) if _epoch_of(line) <= start_epoch]
        write_text_atomic(self.path, "".join(kept))

    def write(self, metrics: dict) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(metrics, sort_keys=True) + "\n")


def _read_lines(path: Path) -> list[str]:
    try:
        return [line if line.endswith("\n") else line + "\n" for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _epoch_of(line: str) -> int:
    try:
        return int(json.loads(line).get("epoch", 0))
    except (ValueError, AttributeError):
        return 1 << 30  # not one of ours: dropped


@contextlib.contextmanager
def _checkpoint_location(checkpoint_dir: str | None) -> Iterator[str]:
    if checkpoint_dir is not None:
        yield checkpoint_dir
        return
    with tempfile.TemporaryDirectory(prefix="tokensweep-ckpt-") as tmp:
        yield tmp


class GuardedLoader:
    """A loader whose every batch is fetched and used under `guard()`: entered before a batch is fetched,
    left when the next one is asked for or when the loop ends (by break or an exception)."""

    def __init__(self, loader, guard: StepGuard):
        self.loader, self.guard = loader, guard

    def __iter__(self):
        batches = iter(self.loader)
        while True:
            with self.guard():
                batch = next(batches, None)
                if batch is None:
                    return
                yield batch

    def device_augment(self, x):
        return self.loader.device_augment(x)


def _reseed_shuffle(loader, seed: int, epoch: int) -> None:
    """Each epoch's order depends only on (seed, epoch), so a resumed trial sees the batches it would have."""
    generator = getattr(loader, "generator", None)
    if generator is not None:
        generator.manual_seed(seed * 1_000_003 + epoch)


def train_one_epoch(model, loader, optimizer, scaler, mixer, schedule, epoch, config, device, precision, bar) -> dict:
    model.train()
    loss_sum = torch.zeros((), device=device)
    images, step_in_epoch, lr = 0, 0, 0.0
    tick = time.perf_counter()
    for x, y in loader:
        if step_in_epoch >= schedule.steps_per_epoch:
            break
        step = (epoch - 1) * schedule.steps_per_epoch + step_in_epoch
        lr = lr_at(step, schedule.total_steps, schedule.warmup_steps, config.lr, config.min_lr)
        set_lr(optimizer, lr)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = loader.device_augment(x)  # uint8 -> normalised float, random erasing: on the device
        x, targets = mixer(x, y)
        with autocast(device, precision):
            loss = soft_cross_entropy(model(x), targets)
        scaler.scale(loss).backward()
        if config.clip_grad is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

        loss_sum += loss.detach().float()
        images += x.shape[0]
        step_in_epoch += 1
        if step_in_epoch % NAN_CHECK_EVERY == 0 or bar.interactive:
            _check_finite(loss_sum, epoch, step_in_epoch)
        if bar.interactive:
            bar.step(loss.item(), images / (time.perf_counter() - tick))
    _check_finite(loss_sum, epoch, step_in_epoch)
    return {"train_loss": loss_sum.item() / max(1, step_in_epoch), "lr": lr, "images": images}


def _check_finite(loss_sum: torch.Tensor, epoch: int, step: int) -> None:
    if not torch.isfinite(loss_sum).item():
        raise NonFiniteLoss(f"non-finite training loss (NaN or inf) in epoch {epoch} by step {step}")


@torch.no_grad()
def evaluate(model, loader, device, precision) -> dict:
    """Top-1, top-5 (percent) and mean cross-entropy on the validation split."""
    model.eval()
    loss_sum, correct1, correct5, seen = 0.0, 0, 0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = loader.device_augment(x)  # uint8 -> normalised float on the device
        with autocast(device, precision):
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top == y[:, None]
        correct1 += hits[:, 0].sum().item()
        correct5 += hits.any(dim=1).sum().item()
        seen += y.shape[0]
    return {"val_loss": loss_sum / seen, "top1": 100.0 * correct1 / seen, "top5": 100.0 * correct5 / seen}


def measure_model(model: nn.Module, config: TrialConfig, device, precision) -> dict:
    """The final figures: parameters, FLOPs/image, inference and training images/sec, peak memory, energy,
    and the tags they were measured under; measure_speed's details (step times, spreads) stay out."""
    img_size = model.spec.img_size
    speed = measure_speed(model, img_size, config.bench_batch, device, precision, steps=config.bench_steps)
    return {
        **model_counts(model, img_size, device),
        **{k: v for k, v in speed.items() if k in vocab.FINAL_METRICS},
        **{k: v for k, v in speed.items() if k in vocab.TAGS},
        "bench_batch": config.bench_batch,
        "gpu_shared": config.gpu_shared,
    }
