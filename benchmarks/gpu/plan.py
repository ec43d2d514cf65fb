"""What the device check runs, and how long each part may take: the real sizes for one GPU, tiny
ones for `--cpu-dry-run` (the same code paths on CPU, so that the check cannot rot between GPU visits).

Budgets are seconds on one H100/H200 with a fresh compile cache; they add up to under 6 minutes. A
part is stopped at 1.5x its budget (a hung loader, a compile that never ends), recorded as failed,
and the next part runs.
"""

from dataclasses import asdict, dataclass

import torch

# part -> seconds on one H100/H200; the parts run in this order
BUDGET_S = {"correctness": 70, "trial": 60, "speed": 150, "pipeline": 45}
HARD_LIMIT = 1.5  # x budget: where a part is stopped
DRY_RUN_LIMIT_S = 120  # per part on CPU (CI's 2 cores run the whole dry run in well under a minute)


@dataclass(frozen=True)
class Plan:
    device: torch.device
    dry_run: bool
    size: str  # registered models vit_<size>_*: "s" (ViT-S, 224 px) or "tiny" (32 px)
    precision: str = "bf16"
    threads: int | None = None  # torch CPU threads (dry run); None: leave as is
    # 1. correctness
    clustering_shape: tuple[int, int, int] = (8, 64, 28)  # (batch, channels, side): vit_s_supertoken's map
    clustering_iters: int = 3
    model_batch: int = 8
    # 2. the trial
    trial_classes: int = 8
    trial_train_per_class: int = 48  # 384 images: 6 steps of 64 per epoch
    trial_val_per_class: int = 8  # 64: one full validation batch
    trial_batch: int = 64
    trial_workers: int = 4
    bench_steps: int = 5
    # 3. speed
    train_batch: int = 128
    infer_batch: int = 256
    cluster_iters: tuple[int, ...] = (1, 2, 3, 4)
    warmup: int = 3
    train_steps: int = 10
    infer_steps: int = 15
    energy_steps: int = 20  # per model: NVML's counter wants windows of about a second
    gemm_n: int = 8192
    # 4. input pipeline
    pipeline_images: int = 2048  # ImageNet-sized JPEGs: 64 batches of 32, so 16 workers reach a steady state
    pipeline_batch: int = 32
    pipeline_workers: tuple[int, ...] = (4, 8, 16)

    def limit_s(self, part: str) -> float:
        return DRY_RUN_LIMIT_S if self.dry_run else BUDGET_S[part] * HARD_LIMIT

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, torch.device) else v) for k, v in asdict(self).items()}


def gpu_plan(device: torch.device) -> Plan:
    return Plan(device=device, dry_run=False, size="s")


def dry_run_plan() -> Plan:
    """Tiny models, batches and step counts on CPU: proves the code paths run, the figures mean nothing."""
    return Plan(
        device=torch.device("cpu"),
        dry_run=True,
        size="tiny",
        threads=2,
        clustering_shape=(2, 32, 4),
        model_batch=2,
        trial_classes=4,
        trial_train_per_class=8,
        trial_val_per_class=4,
        trial_batch=8,
        trial_workers=2,
        bench_steps=1,
        train_batch=4,
        infer_batch=8,
        warmup=1,
        train_steps=2,
        infer_steps=2,
        energy_steps=1,
        gemm_n=128,
        pipeline_images=24,
        pipeline_batch=4,
        pipeline_workers=(1, 2),
    )
