"""Part 1: correctness on the device.

- the tests marked `gpu` (pytest, where it is installed; the checks below cover the same ground);
- SuperTokenClustering on the path trials takes on CUDA (fused="auto": torch.compile) and eager,
  each against a float64 reference (STViT's algorithm as its code writes it, benchmarks/clustering.py),
  on fresh random inputs in fp32 and under bf16 autocast: outputs and input gradients, no NaN;
- every registered vit_<size>_* model, forward + backward under bf16 autocast: finite loss, a finite
  gradient for every trainable parameter.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.clustering import relative_error, stvit_baseline
from benchmarks.gpu.plan import Plan
from benchmarks.gpu.report import Report
from trials import create_model, list_models
from trials.measure.throughput import autocast
from trials.models.clustering import SuperTokenClustering, compiled_clustering

PART = "correctness"
REPO = Path(__file__).resolve().parents[2]
GPU_TEST_PATHS = ("tests/unit/trials",)  # torch-only tests; the others need the platform's packages
# Tolerances on ||x - reference|| / ||reference|| against the float64 reference:
FP32_TOL = 1e-4  # float32 sums of at most 9 x grid^2 terms per iteration; measured ~2e-7 on CPU
BF16_TOL = 1e-2  # the output (and the gradient reaching the input) is rounded to bf16: ~4e-3 expected
SEED = 15  # this number: inputs the unit tests (seeds 0-9) do not use


PYTEST_TIMEOUT_S = 60  # cold compiles included; the inline checks below still fit the part's limit


def run(plan: Plan, report: Report, context: dict) -> None:
    checks = [("pytest -m gpu", lambda: gpu_tests(plan, report))]
    for dtype in (torch.float32, torch.bfloat16):
        checks.append((f"clustering, {dtype}", lambda d=dtype: clustering_against_reference(plan, report, d)))
    for name in [m for m in list_models() if m.startswith(f"vit_{plan.size}_")]:
        checks.append((name, lambda n=name: model_forward_backward(plan, report, n)))
    for name, check in checks:  # one that raises is recorded; the others still run
        try:
            check()
        except Exception as err:
            report.fail(PART, name, err)


# --- the tests marked gpu ---


def gpu_tests(plan: Plan, report: Report) -> None:
    if importlib.util.find_spec("pytest") is None:
        report.skip(PART, "pytest -m gpu", "pytest is not installed; the checks below run the same ground inline")
        return
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *GPU_TEST_PATHS]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # third-party plugins may need absent packages
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    if plan.device.type != "cuda":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run: the gpu tests skip, as on CI
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=PYTEST_TIMEOUT_S)
    output = (done.stdout + done.stderr).strip().splitlines()
    found = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", " ".join(output[-3:]))
    counts = {k: int(n) for n, k in found}
    passed = counts.get("passed", 0)
    # On CUDA the gpu tests must run (none skipped for want of a device); on CPU they must skip cleanly.
    ok = done.returncode == 0 and (passed > 0 if plan.device.type == "cuda" else True)
    summary = output[-1] if output else f"exit {done.returncode}"
    fields = {"passed": passed, "failed": counts.get("failed", 0), "skipped": counts.get("skipped", 0)}
    if ok:
        report.add(PART, "pytest -m gpu", note=summary, **fields)
    else:
        report.fail(PART, "pytest -m gpu", f"exit {done.returncode}: {summary}", **fields,
                    output_tail=" | ".join(output[-15:]))  # fmt: skip
    print(f"  pytest -m gpu: {summary}", flush=True)


# --- the clustering against a float64 reference ---


def compiled_path(plan: Plan, grid: int, iters: int):
    """The clustering as a CUDA trial runs it: SuperTokenClustering(fused="auto"), i.e. torch.compile.

    CPU dry run: "auto" would be eager, and Inductor's C++ code generation takes minutes on 2 cores;
    the aot_eager backend captures the same graph (fullgraph, the whole autograd.Function) without it,
    wrapped as the module wraps its call (float32 inside, autocast off).
    """
    if plan.device.type == "cuda":
        module = SuperTokenClustering(grid, iters, fused="auto")
        assert module.uses_compile(plan.device), "fused='auto' must compile on CUDA"
        return module
    fn = compiled_clustering("aot_eager")

    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return fn(x.float(), grid, iters, False).to(x.dtype)

    return call


def forward_backward(fn, x: torch.Tensor, grad_out: torch.Tensor, dtype: torch.dtype):
    """(output, input gradient) of fn at x, under autocast to `dtype` (off for float32 and float64)."""
    z = x.detach().requires_grad_(True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out = fn(z)
    out.backward(grad_out.to(out.dtype))
    return out.detach(), z.grad


def clustering_inputs(plan: Plan, dtype: torch.dtype):
    """A fresh random map in the model's layout (channels_last) and an output gradient, in `dtype`."""
    batch, channels, side = plan.clustering_shape
    g = torch.Generator(device=plan.device).manual_seed(SEED)
    x = torch.randn(batch, channels, side, side, device=plan.device, generator=g).to(dtype)
    grad = torch.randn(batch, channels, side // 2, side // 2, device=plan.device, generator=g).to(dtype)
    return x.contiguous(memory_format=torch.channels_last), grad


def clustering_against_reference(plan: Plan, report: Report, dtype: torch.dtype) -> None:
    grid, iters = 2, plan.clustering_iters
    name = str(dtype).removeprefix("torch.")
    tol = FP32_TOL if dtype == torch.float32 else BF16_TOL
    x, grad = clustering_inputs(plan, dtype)
    # the reference sees the same (already rounded) inputs, in float64
    ref_out, ref_grad = forward_backward(lambda z: stvit_baseline(z, grid, iters), x.double(), grad.double(),
                                         torch.float64)  # fmt: skip
    results = {}
    variants = {"compiled": lambda: compiled_path(plan, grid, iters),
                "eager": lambda: SuperTokenClustering(grid, iters, fused=False)}  # fmt: skip
    for variant, build in variants.items():
        check = f"clustering {variant} vs float64 reference, {name}"
        try:
            out, x_grad = forward_backward(build(), x, grad, dtype)
            results[variant] = (out, x_grad)
            finite = bool(torch.isfinite(out).all() and torch.isfinite(x_grad).all())
            err_out, err_grad = relative_error(out, ref_out), relative_error(x_grad, ref_grad)
            ok = finite and err_out <= tol and err_grad <= tol and out.dtype == dtype
            report.check(PART, check, ok, rel_err_out=err_out, rel_err_grad=err_grad, tolerance=tol, finite=finite,
                         out_dtype=str(out.dtype), shape=str(tuple(x.shape)), iters=iters)  # fmt: skip
            print(f"  {check}: rel err out {err_out:.2e}, grad {err_grad:.2e} (tolerance {tol:g})", flush=True)
        except Exception as err:
            report.fail(PART, check, err, iters=iters)
    if len(results) == 2:
        (a, ga), (b, gb) = results["compiled"], results["eager"]
        err_out, err_grad = relative_error(a, b), relative_error(ga, gb)
        report.check(PART, f"clustering compiled vs eager, {name}", err_out <= tol and err_grad <= tol,
                     rel_err_out=err_out, rel_err_grad=err_grad, tolerance=tol)  # fmt: skip


# --- every model, forward and backward ---


def model_forward_backward(plan: Plan, report: Report, name: str) -> None:
    check = f"{name} forward + backward, {plan.precision} autocast"
    try:
        model = create_model(name).to(plan.device).train()
        size = model.spec.img_size
        g = torch.Generator(device=plan.device).manual_seed(SEED)
        x = torch.randn(plan.model_batch, 3, size, size, device=plan.device, generator=g)
        y = torch.randint(0, model.head.out_features, (plan.model_batch,), device=plan.device, generator=g)
        with autocast(plan.device, plan.precision):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        loss.backward()
        params = [p for p in model.parameters() if p.requires_grad]
        missing = sum(p.grad is None for p in params)
        bad = sum(p.grad is not None and not bool(torch.isfinite(p.grad).all()) for p in params)
        ok = bool(torch.isfinite(loss)) and missing == 0 and bad == 0 and logits.dtype == torch.bfloat16
        report.check(PART, check, ok, loss=loss.item(), logits_dtype=str(logits.dtype), params=len(params),
                     params_without_grad=missing, params_with_nonfinite_grad=bad, batch=plan.model_batch)  # fmt: skip
        finite = len(params) - missing - bad
        print(f"  {check}: loss {loss.item():.3f}, {finite}/{len(params)} finite gradients", flush=True)
    except Exception as err:
        report.fail(PART, check, err)
