"""Target 2: images/sec of vit_s_patch, vit_s_conv and vit_s_supertoken (iters 1-4) on one device, one run.

Inference for all six (the paper's Table 8 varies the iterations), training for the three
embeddings; all variants of a kind are timed interleaved. Inference times each model's
inference-ready copy (trials.measure.inference_ready: BatchNorm folded, oneDNN linears on CPU),
as trials does for `images_per_sec`. Beside them: FLOPs per image, the measured matrix-multiply
rate of this device (a large square matmul in the same run, through every GEMM library torch
offers here, the fastest taken), and the backbone's achieved FLOP/s against it. On CUDA: bf16, model FLOP utilisation (MFU) of
training, and joules per image from NVML.
"""

from functools import partial

import torch

from benchmarks.common import SectionResult, Settings, Target, env_columns
from trials import create_model
from trials.measure import (
    inference_throughput,
    make_inference_step,
    make_train_step,
    model_counts,
    ratio_of_medians,
    time_interleaved,
)
from trials.measure.counts import count_flops
from trials.measure.inference_ready import inference_ready, onednn_linear_available
from trials.measure.throughput import autocast
from trials.measure.timing import cpu_threads

ITERS = (1, 2, 3, 4)
QUICK_ITERS = (1, 3)


def variants(quick: bool) -> dict[str, tuple[str, dict]]:
    """label -> (registered model, overrides). Quick: the tiny models, for tests."""
    size = "tiny" if quick else "s"
    models = {f"vit_{size}_patch": (f"vit_{size}_patch", {}), f"vit_{size}_conv": (f"vit_{size}_conv", {})}
    for i in QUICK_ITERS if quick else ITERS:
        models[f"vit_{size}_supertoken_i{i}"] = (f"vit_{size}_supertoken", {"cluster_iters": i})
    return models


def plan(settings: Settings) -> dict:
    """Batch, precision and step counts: ViT-S steps take seconds on 2 CPU cores, milliseconds on a GPU."""
    if settings.quick:
        return {"batch": 4, "precision": "fp32", "infer_steps": 2, "train_steps": 2, "warmup": 1, "gemm_n": 256}
    if settings.on_cuda:
        return {"batch": 128, "precision": "bf16", "infer_steps": 20, "train_steps": 10, "warmup": 3, "gemm_n": 8192}
    return {"batch": 32, "precision": "fp32", "infer_steps": 5, "train_steps": 3, "warmup": 1, "gemm_n": 4096}


def matmul_steps(device: torch.device, precision: str, n: int) -> tuple[dict, int]:
    """({label: step}, FLOPs per step) of an n x n x n matmul in `precision` through each GEMM library
    torch can use here; the fastest is the device's practical peak. On CPU fp32 torch.mm is MKL's
    sgemm, and oneDNN (which the inference-ready models use) is faster on some CPUs (AMD EPYC here):
    taking the better of the two keeps the reference from flattering the models."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    steps = {MATMUL: lambda: a @ b}
    if precision == "fp32" and onednn_linear_available(device):
        steps[MATMUL_ONEDNN] = lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    return steps, 2 * n**3


def backbone_forward(model, tokens: torch.Tensor) -> torch.Tensor:
    """The model without its embedding (its own forward_tokens), then the head on the class token."""
    return model.head(model.forward_tokens(tokens)[:, 0])


def backbone_step(model, batch: int, device: torch.device, precision: str):
    """(step, FLOPs per image) of the shared backbone alone, inference-ready as the models run, on random tokens."""
    grid = model.embed.grid_size
    tokens = torch.randn(batch, grid * grid, model.cfg.dim, device=device)
    ready = inference_ready(model, precision)
    flops = count_flops(partial(backbone_forward, model, tokens[:1]))

    def step():
        with torch.inference_mode(), autocast(device, precision):
            backbone_forward(ready, tokens)

    return step, flops


def run(settings: Settings) -> SectionResult:
    p = plan(settings)
    batch, precision, device = p["batch"], p["precision"], settings.device
    result = SectionResult(
        "models",
        md_columns=("model", "gflops", "images_per_sec", "infer_spread", "infer_vs_patch",
                    "infer_vs_patch_best", "achieved_gflops_per_sec", "gemm_fraction", "gemm_fraction_best",
                    "train_images_per_sec",
                    "train_spread", "train_vs_patch", "mfu", "infer_joules_per_image"),
    )  # fmt: skip
    with cpu_threads(settings.threads if device.type == "cpu" else None):
        specs = variants(settings.quick)
        models = {label: create_model(name, **kw).to(device).eval() for label, (name, kw) in specs.items()}
        patch = next(iter(models))
        steps = {label: make_inference_step(m, m.spec.img_size, batch, device, precision) for label, m in models.items()}
        steps[BACKBONE], backbone_flops = backbone_step(models[patch], batch, device, precision)
        matmuls, matmul_flops = matmul_steps(device, precision, p["gemm_n"])
        infer = time_interleaved(steps | matmuls, device, p["warmup"], p["infer_steps"])  # models, backbone, matmuls
        gemm = max(matmul_flops / infer[label].median_s for label in matmuls)  # the fastest library's rate
        gemm_best = max(matmul_flops / infer[label].min_s for label in matmuls)
        print(f"  inference done; {precision} matmul {gemm / 1e9:.0f} GFLOP/s", flush=True)
        train_labels = [label for label in models if not label.endswith(("_i1", "_i2", "_i4"))]
        train = time_interleaved(
            {label: make_train_step(models[label], models[label].spec.img_size, batch, device, precision)
             for label in train_labels},
            device, p["warmup"], p["train_steps"],
        )  # fmt: skip
        print("  training done", flush=True)
        for label, m in models.items():
            row = model_row(label, m, specs[label][1], infer[label], train.get(label), batch, gemm)
            row["infer_vs_patch"] = ratio_of_medians(infer[patch], infer[label])
            row["infer_vs_patch_best"] = infer[patch].min_s / infer[label].min_s
            if label in train:
                row["train_vs_patch"] = ratio_of_medians(train[patch], train[label])
            if settings.on_cuda:  # energy and peak memory per model (NVML, CUDA allocator)
                t = inference_throughput(m, m.spec.img_size, batch, device, precision, p["warmup"], p["infer_steps"])
                row.update(infer_joules_per_image=t.joules_per_image, infer_peak_mem_mb=t.peak_mem_mb)
            result.rows.append(row)
        result.rows.append(rate_row(BACKBONE, infer[BACKBONE], backbone_flops * batch, gemm, gemm_best))
        result.rows.extend(rate_row(label, infer[label], matmul_flops, gemm, gemm_best) for label in matmuls)
    for row in result.rows:
        row.update(env_columns(settings, precision, batch))
    result.targets = targets(result.rows, settings)
    result.notes = NOTES
    return result


BACKBONE = "backbone (ViT blocks, no embedding)"
MATMUL = "torch.mm (square, same threads)"
MATMUL_ONEDNN = "oneDNN matmul (square, same threads)"


def rate_row(name: str, timing, flops_per_step: float, gemm: float, gemm_best: float) -> dict:
    achieved = flops_per_step / timing.median_s
    return {"model": name, "infer_step_ms": timing.median_s * 1e3, "infer_spread": timing.spread,
            "achieved_gflops_per_sec": achieved / 1e9, "gemm_fraction": achieved / gemm,
            "gemm_fraction_best": flops_per_step / timing.min_s / gemm_best}  # fmt: skip


def model_row(label: str, model, overrides: dict, infer, train, batch: int, gemm: float) -> dict:
    counts = model_counts(model, model.spec.img_size, next(model.parameters()).device)
    row = {
        "model": label,
        "embedding": model.spec.embedding,
        "cluster_iters": overrides.get("cluster_iters"),
        "img_size": model.spec.img_size,
        "param_count": counts["params"],
        "embed_param_count": counts["embed_params"],
        "gflops": counts["flops"] / 1e9,
        "images_per_sec": infer.per_sec(batch),
        "infer_step_ms": infer.median_s * 1e3,
        "infer_spread": infer.spread,
        "achieved_gflops_per_sec": counts["flops"] * infer.per_sec(batch) / 1e9,
    }
    row["gemm_fraction"] = row["achieved_gflops_per_sec"] * 1e9 / gemm
    if train is not None:
        row.update(
            train_images_per_sec=train.per_sec(batch),
            train_step_ms=train.median_s * 1e3,
            train_spread=train.spread,
            mfu=3 * counts["flops"] * train.per_sec(batch) / gemm,  # training = forward + 2x forward in backward
        )
    return row


def targets(rows: list[dict], settings: Settings) -> list[Target]:
    by_model = {r["model"]: r for r in rows}
    size = "tiny" if settings.quick else "s"
    st3 = by_model[f"vit_{size}_supertoken_i3"]
    backbone = by_model[BACKBONE]
    matmul_spread = max(r["infer_spread"] for r in rows if r["model"] in (MATMUL, MATMUL_ONEDNN))
    patch = by_model[f"vit_{size}_patch"]
    out = [
        Target("vit_s_supertoken (iters 3) inference img/s vs vit_s_patch", st3["infer_vs_patch"], 0.90, "x", True,
               f"fastest steps: {st3['infer_vs_patch_best']:.2f}x", max(st3["infer_spread"], patch["infer_spread"])),
        Target("backbone FLOP/s vs this device's matmul rate (fp32 on CPU)", backbone["gemm_fraction"], 0.75, "x",
               True, f"fastest steps: {backbone['gemm_fraction_best']:.2f}x", max(backbone["infer_spread"], matmul_spread)),
    ]
    if settings.on_cuda:
        st3_train = st3.get("mfu")
        out.append(Target("training MFU (bf16), vit_s_supertoken iters 3", st3_train, 0.40, "x", True,
                          f"vit_s_patch: {patch.get('mfu', 0):.2f}", st3.get("train_spread")))
    else:
        out.append(Target("GPU training MFU (bf16) vs measured bf16 matmul", None, 0.40, note="no CUDA device here"))
    return out


NOTES = [
    "gflops: forward FLOPs per image counted by torch.utils.flop_counter (2 per multiply-add; matmuls, "
    "convolutions and attention; elementwise ops not counted), as trials.measure.flops_per_image.",
    "torch's FlopCounterMode has formulas for the CUDA attention kernels only; trials.measure.counts adds "
    "the CPU flash-attention kernel's (QK^T and AV, ~9% of ViT-S: backbone 7.69 GFLOP per image, 6.97 "
    "without), so a model counts the same on every device.",
    "Inference: a fixed random batch under torch.inference_mode on each model's inference-ready copy (eval, "
    "BatchNorm folded into the convolutions; on CPU fp32 every linear one oneDNN call with the GELU fused; "
    "trials.measure.inference_ready, the copy trials times for images_per_sec); the six models, the "
    "backbone alone (inference-ready too) and a square matmul (4096 fp32 on CPU through torch.mm/MKL and "
    "oneDNN, 8192 bf16 torch.mm on CUDA) alternate step by step. Training: forward, backward and AdamW on a "
    "plain copy of each model; the three embeddings alternate.",
    "gemm_fraction: achieved FLOP/s (gflops x images/sec) over the matmul FLOP/s of the same rounds, the "
    "faster library's (median). gemm_fraction_best: the same from the fastest steps of each. mfu: 3 x "
    "forward FLOPs x training images/sec over the median matmul rate.",
    "infer_vs_patch uses median steps (the protocol); infer_vs_patch_best the fastest step of each, which a "
    "busy machine cannot inflate: when the two agree, the ratio is not an artefact of contention.",
    "On a shared machine (load_avg_1m above the core count) absolute figures drop; interleaving keeps the "
    "ratios fair, and the spread column says how steady the steps were.",
]
