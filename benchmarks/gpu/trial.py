"""Part 2: a real trial. trials.run_trial of vit_<size>_supertoken on the generated data at the
model's size (224 px for ViT-S), 2 short epochs in bf16, loader workers (pinned memory on CUDA),
interrupted after its first epoch's checkpoint as a crash would, then resumed from it.

Checks: the checkpoint is there, the resumed run trains epoch 2 only, losses are finite, and the
final metrics carry the measurements (images/sec, FLOPs; on CUDA peak_mem_mb and joules_per_image).
Then the epoch time a sweep's plan gives this trial (trials.measure.calibrate) beside the one it took:
how good GPU plans are.
"""

import math
import tempfile
from pathlib import Path

from benchmarks.gpu.plan import Plan
from benchmarks.gpu.report import Report
from trials import TrialConfig, run_trial
from trials.measure.calibrate import calibrate

PART = "trial"
EPOCHS = 2
REPORTED = ("train_loss", "val_loss", "top1", "train_images_per_sec_epoch", "images_per_sec", "train_images_per_sec",
            "flops", "params", "peak_mem_mb", "joules_per_image", "epoch_time_s", "device", "precision")  # fmt: skip


class Interrupted(Exception):
    """Raised from the report hook after epoch 1: the trial stops as a crash would, its checkpoint written."""


def trial_config(plan: Plan) -> TrialConfig:
    # Every value explicit (not TrialConfig.smoke): the check does not depend on a preset's defaults.
    return TrialConfig.from_dict(
        dict(
            model=f"vit_{plan.size}_supertoken",
            dataset="tiny",
            tiny_classes=plan.trial_classes,
            tiny_train_per_class=plan.trial_train_per_class,
            tiny_val_per_class=plan.trial_val_per_class,
            epochs=EPOCHS,
            batch_size=plan.trial_batch,
            warmup_epochs=1.0,
            workers=plan.trial_workers,  # > 0: the full recipe (RandAugment) in worker processes
            device=plan.device.type,
            precision=plan.precision,
            threads=plan.threads,
            bench_batch=plan.trial_batch,
            bench_steps=plan.bench_steps,
        )
    )


def run(plan: Plan, report: Report, context: dict) -> None:
    config = trial_config(plan)
    with tempfile.TemporaryDirectory(prefix="tokensweep-gpu-trial-") as ckpt:
        first_epochs = first_run(config, ckpt)
        report.check(PART, "interrupted after epoch 1, checkpoint written", first_epochs == [1]
                     and any(Path(ckpt).iterdir()), epochs_reported=str(first_epochs))  # fmt: skip
        resumed_epochs: list[int] = []
        final = run_trial(config, report=lambda m, d: resumed_epochs.append(m["epoch"]), resume_from=ckpt,
                          checkpoint_dir=ckpt, progress=False)  # fmt: skip
    report.check(PART, "resumed from the checkpoint: trains epoch 2 only", resumed_epochs == [EPOCHS]
                 and final.get("epoch") == EPOCHS, epochs_reported=str(resumed_epochs))  # fmt: skip
    figures = {k: final.get(k) for k in REPORTED}
    finite = all(isinstance(final.get(k), float) and math.isfinite(final[k]) for k in ("train_loss", "val_loss"))
    report.check(PART, "final losses finite", finite, **figures)
    for key in ("images_per_sec", "train_images_per_sec", "flops"):
        report.check(PART, f"final metrics carry {key}", _positive(final.get(key)), value=final.get(key))
    for key in ("peak_mem_mb", "joules_per_image"):
        if plan.device.type == "cuda":
            report.check(PART, f"final metrics carry {key}", _positive(final.get(key)), value=final.get(key))
        else:
            report.skip(PART, f"final metrics carry {key}", "CUDA only (allocator counters, NVML)")
    context["trial_train_rate"] = final.get("train_images_per_sec")
    report.line(PART, f"{config.model}: train img/s (bench batch {config.bench_batch}), peak MiB, J/image",
                f"{_num(final.get('train_images_per_sec'))}, {_num(final.get('peak_mem_mb'))}, "
                f"{_num(final.get('joules_per_image'), '.3g')}")  # fmt: skip
    planned = calibrate(config).epoch_s(config.batch_size, config.max_steps_per_epoch)
    report.line(PART, "epoch time: planned (calibration) / measured (epoch 2)",
                f"{planned:.2f} s / {final['epoch_time_s']:.2f} s = {planned / final['epoch_time_s']:.2f}")  # fmt: skip
    print(f"  trial: epoch {final.get('epoch')}, train_loss {final.get('train_loss'):.3f}, "
          f"{_num(final.get('train_images_per_sec'))} train img/s", flush=True)  # fmt: skip


def first_run(config: TrialConfig, ckpt: str) -> list[int]:
    """Run until the first report (after epoch 1's checkpoint), then stop; the epochs reported."""
    epochs: list[int] = []

    def stop(metrics: dict, directory: str) -> None:
        epochs.append(metrics["epoch"])
        raise Interrupted

    try:
        run_trial(config, report=stop, checkpoint_dir=ckpt, progress=False)
    except Interrupted:
        pass
    return epochs


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _num(value, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)
