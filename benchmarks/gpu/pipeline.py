"""Part 4: the input pipeline against the training rate.

trials' own ImageFolder loader (trials.data.build_loaders for a TrialConfig: the training recipe in
worker processes, uint8 batches, pinned memory on CUDA, then the non-blocking copy and the on-device
normalise + erasing the training loop does) over a generated folder of ImageNet-sized JPEGs
(500x375 and its kin, as benchmarks/data.py writes them: decoding them is what a real epoch costs),
cropped to 224 px, with 4, 8 and 16 workers; and over its `--resize 256 --predecode` copy
(trials.data.write_prepared_copy, what `tokensweep data imagenet100 --predecode` writes). Each
figure sits beside the training rate part 3 measured, with the fewest workers that feed it.

The rate is the steady state: from the batch by which every worker has delivered once to the
batch that many before the end, so worker start-up and the last stragglers stay out of it.
"""

import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import Target
from benchmarks.data import SIZES, synthetic_photo
from benchmarks.gpu.plan import Plan
from benchmarks.gpu.report import Report
from trials import TrialConfig
from trials.data import build_loaders, write_prepared_copy
from trials.measure.timing import synchronize

PART = "pipeline"
CLASSES = 4
VAL_PER_CLASS = 2
SHORTER_SIDE = 256  # the copy `tokensweep data imagenet100 --resize 256 --predecode` makes


def run(plan: Plan, report: Report, context: dict) -> None:
    rate, source = training_rate(context)
    processes = min(16, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="tokensweep-gpu-data-") as tmp:
        start = time.perf_counter()
        source_dir = write_folder(Path(tmp) / "jpeg", plan.pipeline_images, processes)
        classes = sorted(p.name for p in (source_dir / "train").iterdir())
        forms = {"default": source_dir}
        try:
            forms["predecoded"] = write_prepared_copy(source_dir, Path(tmp) / "predecoded", classes, SHORTER_SIDE,
                                                      predecode=True, processes=processes)  # fmt: skip
        except Exception as err:
            report.fail(PART, "--resize 256 --predecode copy", err)
        report.add(PART, "generated data", images=plan.pipeline_images, seconds=time.perf_counter() - start,
                   processes=processes)  # fmt: skip
        for form, root in forms.items():
            rates = {}
            for workers in plan.pipeline_workers:
                check = f"{form} loader, {workers} workers"
                try:
                    rates[workers], data_form = loader_rate(plan, root, workers)
                except Exception as err:
                    report.fail(PART, check, err)
                    continue
                report.add(PART, check, form=form, data_form=data_form, workers=workers, batch=plan.pipeline_batch,
                           images_per_sec=rates[workers], training_rate=rate, training_rate_source=source,
                           feeds_training=None if rate is None else rates[workers] >= rate)  # fmt: skip
                print(f"  {check}: {rates[workers]:,.0f} img/s", flush=True)
            feeding(plan, report, form, rates, rate, source)


def training_rate(context: dict) -> tuple[float | None, str]:
    """The rate a loader must feed: part 3's vit_s_supertoken training, else the trial's, else none."""
    if context.get("train_rate"):
        return context["train_rate"], context["train_rate_label"]
    if context.get("trial_train_rate"):
        return context["trial_train_rate"], "the trial's final training measurement"
    return None, "no training rate measured"


def feeding(plan: Plan, report: Report, form: str, rates: dict, rate: float | None, source: str) -> None:
    """The fewest measured workers that keep up with `rate`; past the largest count, a linear estimate."""
    if not rates:
        return
    measured = " / ".join(f"{rates[w]:,.0f}" for w in sorted(rates))
    report.line(PART, f"{form} loader img/s, {' / '.join(map(str, sorted(rates)))} workers", measured)
    if rate is None:
        return
    enough = [w for w in sorted(rates) if rates[w] >= rate]
    most = max(rates)
    needed = enough[0] if enough else math.ceil(rate / (rates[most] / most))
    note = f"{rate:,.0f} img/s, {source}" + ("" if enough else f"; > {most} measured, linear estimate")
    goal = max(1, (os.cpu_count() or 2) - 1)  # every core but the training process's
    report.target(PART, Target(f"workers to feed training, {form} form", needed, goal, "", False, note))


def write_folder(root: Path, count: int, processes: int) -> Path:
    """root/{train,val}/class_<c>/*.jpg: `count` train images of ImageNet-like sizes, a few for val."""
    jobs = [(root / "train" / f"class_{i % CLASSES}" / f"{i:05d}.jpg", i) for i in range(count)]
    val = range(CLASSES * VAL_PER_CLASS)
    jobs += [(root / "val" / f"class_{i % CLASSES}" / f"{i:05d}.jpg", count + i) for i in val]
    for path, _ in jobs:
        path.parent.mkdir(parents=True, exist_ok=True)
    if processes == 1:
        list(map(write_jpeg, jobs))
    else:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(write_jpeg, jobs, chunksize=16))
    return root


def write_jpeg(job: tuple[Path, int]) -> None:
    path, index = job
    synthetic_photo(*SIZES[index % len(SIZES)], np.random.default_rng(index)).save(path, quality=90)


def loader_config(plan: Plan, root: Path, workers: int) -> TrialConfig:
    return TrialConfig.from_dict(
        dict(
            model=f"vit_{plan.size}_supertoken",  # 224 px for ViT-S
            dataset="imagefolder",
            data_dir=str(root),
            workers=workers,
            batch_size=plan.pipeline_batch,
            randaugment=True,
            random_erasing=0.25,
            device=plan.device.type,
            precision=plan.precision,
            epochs=1,
            warmup_epochs=0.0,
        )
    )


def loader_rate(plan: Plan, root: Path, workers: int) -> tuple[float, str]:
    """Steady-state images/sec of one epoch of the train loader, consumed as the training loop does."""
    train, val, _ = build_loaders(loader_config(plan, root, workers), plan.device)
    marks = []
    for x, y in train:
        x, y = x.to(plan.device, non_blocking=True), y.to(plan.device, non_blocking=True)
        x = train.device_augment(x)
        marks.append((time.perf_counter(), x.shape[0]))
    synchronize(plan.device)
    data_form = train.data_form
    del train, val, x, y
    return steady_rate(marks, workers), data_form


def steady_rate(marks: list[tuple[float, int]], workers: int) -> float:
    """Images/sec between batch `skip` and batch len - 1 - skip, skip = workers where the epoch allows."""
    skip = max(0, min(workers, (len(marks) - 2) // 2))
    first, last = skip, len(marks) - 1 - skip
    if last <= first:
        raise ValueError(f"{len(marks)} batches are too few to time a loader")
    images = sum(n for _, n in marks[first + 1 : last + 1])
    return images / (marks[last][0] - marks[first][0])
