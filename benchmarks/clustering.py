"""Target 1: trials.SuperTokenClustering against a straightforward implementation of STViT's algorithm.

Forward + backward at the embedding's shape in vit_s_supertoken (B=32, C=64, 28x28, grid 2)
for iters 1-4, float32, fixed CPU threads: time (interleaved, median), peak memory (allocator
trace; and, for iters 3, the RSS high-water mark of a fresh process), and the relative error
of outputs and input gradients. On CUDA also B=128 bf16, with the torch.compile'd path, and
the clustering's share of a vit_s_supertoken training step.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from benchmarks.common import SectionResult, Settings, Target, env_columns
from trials import create_model
from trials.models.clustering import SuperTokenClustering
from trials.measure import train_throughput
from trials.measure.memory import peak_memory_bytes
from trials.measure.timing import cpu_threads, ratio_of_medians, time_interleaved

EYE = torch.eye(9).reshape(9, 1, 3, 3)  # 9 one-hot 3x3 kernels: unfold/fold as convolutions


# --- the baseline: STViT's reference code (hhb072/STViT models/stvit.py, stoken_forward), step by step ---


def eye_unfold(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C*9, h*w) as an identity convolution over B*C single-channel maps."""
    b, c, h, w = x.shape
    return F.conv2d(x.reshape(b * c, 1, h, w), EYE.to(x), padding=1).reshape(b, c * 9, h * w)


def eye_fold(x: torch.Tensor) -> torch.Tensor:
    """(B, C*9, h, w) -> (B, C, h, w) as an identity transposed convolution."""
    b, c9, h, w = x.shape
    return F.conv_transpose2d(x.reshape(b * c9 // 9, 9, h, w), EYE.to(x), padding=1).reshape(b, c9 // 9, h, w)


def stvit_baseline(x: torch.Tensor, grid: int, iters: int, eps: float = 1e-12) -> torch.Tensor:
    """STViT's super token sampling as its reference code writes it; autograd records the last step."""
    b, c, height, width = x.shape
    hh, ww = height // grid, width // grid
    scale = c**-0.5
    stoken = F.adaptive_avg_pool2d(x, (hh, ww))
    pixel = x.reshape(b, c, hh, grid, ww, grid).permute(0, 2, 4, 3, 5, 1).reshape(b, hh * ww, grid * grid, c)
    with torch.no_grad():
        for idx in range(iters):
            stoken = eye_unfold(stoken).transpose(1, 2).reshape(b, hh * ww, c, 9)
            affinity = (pixel @ stoken * scale).softmax(-1)
            affinity_sum = eye_fold(affinity.sum(2).transpose(1, 2).reshape(b, 9, hh, ww))
            if idx < iters - 1:
                stoken = pixel.transpose(-1, -2) @ affinity
                stoken = eye_fold(stoken.permute(0, 2, 3, 1).reshape(b * c, 9, hh, ww)).reshape(b, c, hh, ww)
                stoken = stoken / (affinity_sum + eps)
    stoken = pixel.transpose(-1, -2) @ affinity
    stoken = eye_fold(stoken.permute(0, 2, 3, 1).reshape(b * c, 9, hh, ww)).reshape(b, c, hh, ww)
    return stoken / (affinity_sum.detach() + eps)


# --- the comparison ---


@dataclass(frozen=True)
class Shape:
    """The clustering's input, (batch, channels, size, size) feature maps, and its super-token grid."""

    batch: int = 32
    channels: int = 64
    size: int = 28
    grid: int = 2


FULL, QUICK = Shape(), Shape(batch=2, channels=8, size=8)
GPU_SHAPE = Shape(batch=128)


def fwd_bwd(fn, x: torch.Tensor, grad: torch.Tensor):
    """One training-like call: forward, then backward of a fixed random output gradient."""
    z = x.detach().requires_grad_(True)
    out = fn(z)
    out.backward(grad.to(out.dtype))
    return out.detach(), z.grad


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """||value - reference|| / ||reference|| in float64."""
    value, reference = value.double(), reference.double()
    return float((value - reference).norm() / reference.norm())


def variants(shape: Shape, iters: int, on_cuda: bool) -> dict:
    """name -> clustering function; the baseline first."""
    fns = {
        "stvit_reference": partial(stvit_baseline, grid=shape.grid, iters=iters),
        "tokensweep": SuperTokenClustering(shape.grid, iters, fused=False),
    }
    if on_cuda:
        fns["tokensweep_fused"] = SuperTokenClustering(shape.grid, iters, fused=True)
    return fns


def compare(settings: Settings, shape: Shape, iters: int, dtype: torch.dtype) -> list[dict]:
    """One row per variant at one iteration count: time, memory, error against the baseline."""
    device = settings.device
    g = torch.Generator(device=device).manual_seed(iters)
    x = torch.randn(shape.batch, shape.channels, shape.size, shape.size, device=device, dtype=dtype, generator=g)
    out_size = shape.size // shape.grid
    grad = torch.randn(shape.batch, shape.channels, out_size, out_size, device=device, dtype=dtype, generator=g)
    fns = variants(shape, iters, settings.on_cuda)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with autocast:
        calls = {name: partial(fwd_bwd, fn, x, grad) for name, fn in fns.items()}
        outputs = {name: call() for name, call in calls.items()}  # also the first warm-up (and compile)
        timings = time_interleaved(calls, device, settings.warmup, settings.steps)
        memory = {name: peak_memory_bytes(call, device) for name, call in calls.items()}
    base = "stvit_reference"
    rows = []
    for name in fns:
        out, x_grad = outputs[name]
        rows.append(
            {
                "variant": name,
                "iters": iters,
                "batch": shape.batch,
                "channels": shape.channels,
                "size": shape.size,
                "grid": shape.grid,
                "dtype": str(dtype).removeprefix("torch."),
                "fwd_bwd_ms": timings[name].median_s * 1e3,
                "spread": timings[name].spread,
                "speedup_vs_reference": ratio_of_medians(timings[base], timings[name]),
                "speedup_best": timings[base].min_s / timings[name].min_s,
                "peak_mem_mb": memory[name] / 2**20,
                "mem_vs_reference": memory[name] / memory[base],
                "rel_err_out": relative_error(out, outputs[base][0]),
                "rel_err_grad": relative_error(x_grad, outputs[base][1]),
            }
        )
    return rows


# --- peak RSS of a fresh process: the operating system's view, as a cross-check ---

RSS_PROBE = """
import torch
from benchmarks.clustering import Shape, fwd_bwd, variants
def hwm_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
torch.set_num_threads({threads})
s = Shape({batch}, {channels}, {size}, {grid})
fn = variants(s, {iters}, False)["{variant}"]
small = torch.randn(2, s.channels, s.size, s.size)
fwd_bwd(fn, small, torch.randn(2, s.channels, s.size // s.grid, s.size // s.grid))  # libraries initialised
x = torch.randn(s.batch, s.channels, s.size, s.size)
grad = torch.randn(s.batch, s.channels, s.size // s.grid, s.size // s.grid)
before = hwm_kb()
fwd_bwd(fn, x, grad)
print((hwm_kb() - before) / 1024)
"""


def peak_rss_mb(variant: str, shape: Shape, iters: int, threads: int) -> float | None:
    """Rise of the RSS high-water mark over one call, in a fresh process (Linux only).

    glibc's mmap threshold is fixed at 64 KiB so that every tensor is its own mapping and a
    freed tensor leaves RSS at once; otherwise malloc keeps freed memory and the mark overstates.
    """
    if not os.path.exists("/proc/self/status"):
        return None
    code = RSS_PROBE.format(threads=threads, iters=iters, variant=variant, **shape.__dict__)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": repo_path()}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"RSS probe for {variant} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip().splitlines()[-1])


def repo_path() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))


# --- the section ---


def gpu_rows(settings: Settings) -> tuple[list[dict], list[Target]]:
    """B=128 bf16 with the fused path, and the clustering's share of a vit_s_supertoken training step."""
    shape = GPU_SHAPE
    rows = compare(settings, shape, 3, torch.bfloat16)
    fused = next(r for r in rows if r["variant"] == "tokensweep_fused")
    model = create_model("vit_s_supertoken").to(settings.device)
    step = train_throughput(model, 224, shape.batch, settings.device, "bf16", settings.warmup, settings.steps)
    share = fused["fwd_bwd_ms"] / 1e3 / step.step_s
    for row in rows:
        row["train_step_ms"] = step.step_s * 1e3
    targets = [
        Target("GPU fused speed-up, B=128 bf16, iters 3", fused["speedup_vs_reference"], 5.0),
        Target("GPU clustering share of a vit_s_supertoken train step", 100 * share, 3.0, "%", False),
    ]
    return rows, targets


def run(settings: Settings) -> SectionResult:
    shape = QUICK if settings.quick else FULL
    result = SectionResult(
        "clustering",
        md_columns=("variant", "iters", "dtype", "batch", "fwd_bwd_ms", "spread", "speedup_vs_reference", "speedup_best",
                    "peak_mem_mb", "mem_vs_reference", "peak_rss_mb", "rel_err_out", "rel_err_grad"),
    )  # fmt: skip
    with cpu_threads(settings.threads if settings.device.type == "cpu" else None):
        for iters in (1, 3) if settings.quick else (1, 2, 3, 4):
            for row in compare(settings, shape, iters, torch.float32):
                result.rows.append({**row, **env_columns(settings, "fp32", shape.batch)})
            print(f"  clustering iters {iters}: {result.rows[-1]['speedup_vs_reference']:.2f}x", flush=True)
        if not settings.quick:
            for row in result.rows:
                if row["iters"] == 3 and row["variant"] in ("stvit_reference", "tokensweep"):
                    row["peak_rss_mb"] = peak_rss_mb(row["variant"], shape, 3, settings.threads)
        gpu = gpu_rows(settings) if settings.on_cuda else ([], [])
    result.rows += [{**row, **env_columns(settings, "bf16", GPU_SHAPE.batch)} for row in gpu[0]]
    result.targets = cpu_targets(result.rows) + (gpu[1] or gpu_not_measured())
    result.notes = NOTES
    return result


def cpu_targets(rows: list[dict]) -> list[Target]:
    ours = [r for r in rows if r["variant"] == "tokensweep" and r["dtype"] == "float32"]
    at3 = next(r for r in ours if r["iters"] == 3)
    worst = max(max(r["rel_err_out"], r["rel_err_grad"]) for r in ours)
    rss = at3.get("peak_rss_mb")
    base_rss = next((r.get("peak_rss_mb") for r in rows if r["variant"] == "stvit_reference" and r["iters"] == 3), None)
    rss_note = f"RSS cross-check {rss / base_rss:.2f}x" if rss and base_rss else ""
    base3 = next(r for r in rows if r["variant"] == "stvit_reference" and r["iters"] == 3)
    return [
        Target("speed-up vs STViT reference, fwd+bwd, iters 3", at3["speedup_vs_reference"], 4.0, "x", True,
               f"fastest steps: {at3['speedup_best']:.2f}x; iters 1-4: " + ", ".join(
                   f"{r['speedup_vs_reference']:.1f}x" for r in ours), max(at3["spread"], base3["spread"])),
        Target("peak memory vs STViT reference, iters 3", at3["mem_vs_reference"], 0.5, "x", False, rss_note),
        Target("relative error vs reference, iters 1-4 (out, grad)", worst, 1e-5, "", False),
    ]


def gpu_not_measured() -> list[Target]:
    note = "no CUDA device here; the benchmark runs these rows when one is present"
    return [
        Target("GPU fused speed-up, B=128 bf16, iters 3", None, 5.0, note=note),
        Target("GPU clustering share of a vit_s_supertoken train step", None, 3.0, "%", False, note),
    ]


NOTES = [
    "Baseline: STViT's stoken_forward as its reference code writes it (unfold and fold as 3x3 identity "
    "convolutions over B*C single-channel maps), in benchmarks/clustering.py; mask_border=False.",
    "Time: forward + backward of a fixed random output gradient; the two variants alternate step by step "
    "(trials.measure.timing.time_interleaved) and the median step is reported, spread = IQR / median; "
    "speedup_best compares the fastest steps, which a busy machine cannot inflate.",
    "peak_mem_mb: the most bytes held by tensors at once during one call, replayed from torch.profiler's "
    "allocation trace (trials.measure.memory); it includes the input gradient. peak_rss_mb: rise of the "
    "RSS high-water mark over one call in a fresh process per variant, glibc mmap threshold 64 KiB.",
    "Relative errors: ||ours - reference|| / ||reference|| of the output and of the input gradient.",
    "Where the speed-up comes from: no identity convolutions (the unfold is a strided view of the padded "
    "14x14 token map, the fold one index_add_), about 10 large ops per iteration, the affinity sums carried "
    "by the weighted-sum matmul, and a custom autograd.Function that keeps only the last affinity for the "
    "backward.",
]
