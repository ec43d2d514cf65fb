"""Part 3: speed, side by side. Training (batch 128) and inference (batch 256) images/sec in bf16 of
vit_s_patch, vit_s_conv, vit_s_supertoken with iters 1-4 and, where timm imports, timm's
vit_small_patch16_224, each kind timed interleaved with a bf16 square matmul (trials.measure:
time_interleaved, make_train_step / make_inference_step). From those rounds: the matmul rate, and each
model's MFU (3 x forward FLOPs x training images/sec over it; timm's MLP is wider than ours, so MFU,
not images/sec, compares the two). Then energy per image (NVML) and peak memory per model, and the
clustering fused vs STViT's reference at B=128 bf16 with its share of a vit_s_supertoken training step.
"""

import torch

from benchmarks.clustering import GPU_SHAPE, QUICK, compare
from benchmarks.common import Settings, Target
from benchmarks.gpu.plan import Plan
from benchmarks.gpu.report import Report
from trials import create_model
from trials.measure import (
    count_params,
    flops_per_image,
    make_inference_step,
    make_train_step,
    peak_memory_bytes,
    ratio_of_medians,
    time_interleaved,
    time_steps,
)
from trials.measure.energy import EnergyMeter
from trials.measure.throughput import RATES
from trials.measure.timing import synchronize

PART = "speed"
MATMUL = "bf16 matmul"
TIMM_NAME = "vit_small_patch16_224"
TIMM_TINY = dict(img_size=32, embed_dim=64, depth=3, num_heads=2, mlp_ratio=2.0)  # the dry run's stand-in
MFU_GOAL = 0.40
FUSED_SPEEDUP_GOAL = 5.0
CLUSTERING_SHARE_GOAL = 3.0  # percent of a vit_s_supertoken training step


def run(plan: Plan, report: Report, context: dict) -> None:
    models, sizes = build_models(plan, report)
    rows = {label: model_row(label, model, sizes[label], plan, report) for label, model in models.items()}
    matmul = matmul_step(plan)
    gemm = attempt(report, "training timing", lambda: time_kind("train", models, sizes, matmul, rows, plan, report))
    free_memory(plan)  # the training copies and their optimiser state are gone with time_kind's locals
    print(f"  training timed; {MATMUL} {(gemm or 0) / 1e12:.3g} TFLOP/s", flush=True)
    gemm_infer = attempt(report, "inference timing",
                         lambda: time_kind("infer", models, sizes, matmul, rows, plan, report))  # fmt: skip
    del models
    free_memory(plan)
    print("  inference timed", flush=True)
    for label, row in rows.items():
        if gemm and row.get("gflops") and "train_images_per_sec" in row:
            row["mfu"] = 3 * row["gflops"] * 1e9 * row["train_images_per_sec"] / gemm  # forward + 2x in backward
        report.add(PART, label, **row)
    report.add(PART, MATMUL, n=plan.gemm_n, train_round_tflops=(gemm or 0) / 1e12,
               infer_round_tflops=(gemm_infer or 0) / 1e12)  # fmt: skip
    st3 = rows.get(f"vit_{plan.size}_supertoken_i3", {})
    context["train_rate"] = st3.get("train_images_per_sec")
    context["train_rate_label"] = f"vit_{plan.size}_supertoken_i3 training, batch {plan.train_batch}"
    model_lines(plan, report, rows, gemm or 0)
    clustering(plan, report, st3.get("train_step_ms"))


def attempt(report: Report, check: str, fn):
    """fn(), or None with the failure recorded: one phase failing (out of memory, say) leaves the others."""
    try:
        return fn()
    except Exception as err:
        report.fail(PART, check, err)
        return None


def time_kind(kind: str, models: dict, sizes: dict, matmul, rows: dict, plan: Plan, report: Report) -> float:
    """Time every model's `kind` ("train" or "infer") step interleaved with the matmul; fill rows[label]
    with images/sec, step time, spread, ratio to patch, energy and peak memory. Returns the matmul FLOP/s."""
    batch = plan.train_batch if kind == "train" else plan.infer_batch
    make = make_train_step if kind == "train" else make_inference_step
    makers = {label: (lambda m=m, s=sizes[label]: make(m, s, batch, plan.device, plan.precision))
              for label, m in models.items()}  # fmt: skip
    steps = working_steps(makers, "training" if kind == "train" else "inference", plan, report)
    matmul_fn, matmul_flops = matmul
    timed_steps = plan.train_steps if kind == "train" else plan.infer_steps
    timings = time_interleaved({**steps, MATMUL: matmul_fn}, plan.device, plan.warmup, timed_steps)
    patch = timings.get(f"vit_{plan.size}_patch")
    for label, step in steps.items():
        t = timings[label]
        rows[label].update({RATES[kind]: t.per_sec(batch), f"{kind}_step_ms": t.median_s * 1e3,
                            f"{kind}_spread": t.spread,
                            f"{kind}_vs_patch": None if patch is None else ratio_of_medians(patch, t),
                            f"{kind}_joules_per_image": attempt(report, f"{label} {kind} energy",
                                                                lambda: joules_per_image(step, plan, batch)),
                            f"{kind}_peak_mem_mb": attempt(report, f"{label} {kind} peak memory",
                                                           lambda: peak_mb(step, plan))})  # fmt: skip
    return matmul_flops / timings[MATMUL].median_s


# --- the variants ---


def variants(plan: Plan) -> dict[str, tuple[str, dict]]:
    """label -> (registered model, overrides)."""
    patch, conv = f"vit_{plan.size}_patch", f"vit_{plan.size}_conv"
    out = {patch: (patch, {}), conv: (conv, {})}
    for i in plan.cluster_iters:
        out[f"vit_{plan.size}_supertoken_i{i}"] = (f"vit_{plan.size}_supertoken", {"cluster_iters": i})
    return out


def build_models(plan: Plan, report: Report) -> tuple[dict, dict]:
    """label -> model on the device, and label -> its image size; timm's beside ours where it imports."""
    models, sizes = {}, {}
    for label, (name, overrides) in variants(plan).items():
        try:
            models[label] = create_model(name, **overrides).to(plan.device)
            sizes[label] = models[label].spec.img_size
        except Exception as err:
            report.fail(PART, f"{label} build", err)
    num_classes = next(iter(models.values())).head.out_features if models else 100
    timm = timm_model(plan, num_classes, report)
    if timm is not None:
        models[f"timm_{TIMM_NAME}"], sizes[f"timm_{TIMM_NAME}"] = timm
    return models, sizes


def timm_model(plan: Plan, num_classes: int, report: Report):
    """(timm's vit_small_patch16_224 on the device, its image size), or None where timm does not import."""
    try:
        import timm
    except Exception as err:  # not installed, or a dependency of it missing
        report.skip(PART, f"timm_{TIMM_NAME}", f"timm does not import ({type(err).__name__}: {err})")
        return None
    try:
        extra = TIMM_TINY if plan.dry_run else {}
        model = timm.create_model(TIMM_NAME, pretrained=False, num_classes=num_classes, **extra).to(plan.device)
        return model, extra.get("img_size", 224)
    except Exception as err:
        report.fail(PART, f"timm_{TIMM_NAME} build", err)
        return None


def model_row(label: str, model, img_size: int, plan: Plan, report: Report) -> dict:
    row = {"model": label, "img_size": img_size, "params": count_params(model), "precision": plan.precision,
           "train_batch": plan.train_batch, "infer_batch": plan.infer_batch}  # fmt: skip
    try:
        row["gflops"] = flops_per_image(model, img_size, plan.device) / 1e9
    except Exception as err:
        report.fail(PART, f"{label} FLOP count", err)
    return row


def working_steps(makers: dict, kind: str, plan: Plan, report: Report) -> dict:
    """Build each step and run it once (the compile happens here); a variant that fails is recorded and left out."""
    steps = {}
    for label, make in makers.items():
        try:
            step = make()
            step()
            synchronize(plan.device)
            steps[label] = step
        except Exception as err:
            report.fail(PART, f"{label} {kind} step", err)
            free_memory(plan)
    return steps


def matmul_step(plan: Plan):
    """(step, FLOPs per step): an n x n x n matmul in bf16, the device's practical peak for these models."""
    g = torch.Generator(device=plan.device).manual_seed(0)
    a, b = (torch.randn(plan.gemm_n, plan.gemm_n, device=plan.device, generator=g).bfloat16() for _ in range(2))
    return (lambda: a @ b), 2 * plan.gemm_n**3


def joules_per_image(step, plan: Plan, batch: int) -> float | None:
    """NVML energy over `energy_steps` more steps of a warm step, per image; None off CUDA or without NVML."""
    meter = EnergyMeter(plan.device)
    with meter:
        time_steps(step, plan.device, warmup=0, steps=plan.energy_steps)
    return None if meter.joules is None else meter.joules / (batch * plan.energy_steps)


def peak_mb(step, plan: Plan) -> float | None:
    """Peak CUDA memory of one step above what was allocated before it (all models stay resident)."""
    return peak_memory_bytes(step, plan.device) / 2**20 if plan.device.type == "cuda" else None


def free_memory(plan: Plan) -> None:
    if plan.device.type == "cuda":
        torch.cuda.empty_cache()


# --- the table ---


def model_lines(plan: Plan, report: Report, rows: dict, gemm: float) -> None:
    def figures(key: str) -> str:
        return " / ".join(f"{rows[label].get(key, 0):,.0f}" if key in rows[label] else "-" for label in rows)

    names = " / ".join(label.removeprefix(f"vit_{plan.size}_").removeprefix("timm_") for label in rows)
    report.line(PART, f"train img/s, batch {plan.train_batch}: {names}", figures("train_images_per_sec"))
    report.line(PART, f"inference img/s, batch {plan.infer_batch}: {names}", figures(RATES["infer"]))
    report.line(PART, f"{MATMUL} {plan.gemm_n}^3 (training rounds)", f"{gemm / 1e12:.3g} TFLOP/s")
    st3 = rows.get(f"vit_{plan.size}_supertoken_i3", {})
    patch = rows.get(f"vit_{plan.size}_patch", {})
    timm = rows.get(f"timm_{TIMM_NAME}", {})
    note = f"vit_{plan.size}_patch {patch.get('mfu', 0):.2f}" + (f", timm {timm['mfu']:.2f}" if "mfu" in timm else "")
    report.target(PART, Target(f"training MFU ({plan.precision}), vit_{plan.size}_supertoken iters 3", st3.get("mfu"),
                               MFU_GOAL, "", True, note, st3.get("train_spread")))  # fmt: skip
    if "mfu" in timm and "mfu" in patch:
        report.line(PART, "MFU ours (vit_s_patch) / timm vit_small_patch16_224", f"{patch['mfu'] / timm['mfu']:.2f}x")
    joules = [st3.get("train_joules_per_image"), st3.get("infer_joules_per_image")]
    report.line(PART, f"J/image vit_{plan.size}_supertoken iters 3, train / inference",
                " / ".join("-" if j is None else f"{j:.3g}" for j in joules))  # fmt: skip


def clustering(plan: Plan, report: Report, st3_step_ms: float | None) -> None:
    """benchmarks.clustering's comparison at B=128 bf16 (iters 3): fused vs STViT's reference."""
    shape = QUICK if plan.dry_run else GPU_SHAPE
    settings = Settings(plan.device, plan.threads or 1, plan.warmup, steps=2 * plan.train_steps, quick=plan.dry_run)
    try:
        rows = compare(settings, shape, 3, torch.bfloat16)
    except Exception as err:
        report.fail(PART, "clustering fused vs STViT reference", err)
        return
    for row in rows:
        report.add(PART, f"clustering {row['variant']}", **row)
    ours = "tokensweep_fused" if plan.device.type == "cuda" else "tokensweep"  # on CPU the eager path
    fused = next(r for r in rows if r["variant"] == ours)
    where = f"B={shape.batch} bf16 iters 3, fwd+bwd" + ("" if plan.device.type == "cuda" else ", eager on CPU")
    report.target(PART, Target("clustering fused vs STViT reference", fused["speedup_vs_reference"],
                               FUSED_SPEEDUP_GOAL, "x", True, where, fused["spread"]))  # fmt: skip
    share = None
    if st3_step_ms and shape.batch == plan.train_batch:
        share = 100 * fused["fwd_bwd_ms"] / st3_step_ms
    report.target(PART, Target(f"clustering share of a vit_{plan.size}_supertoken train step", share,
                               CLUSTERING_SHARE_GOAL, "%", False, f"batch {shape.batch}"))  # fmt: skip
