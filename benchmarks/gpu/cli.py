"""`python -m benchmarks gpu [--cpu-dry-run] [--out DIR] [--only PART ...]`: runs the parts in order,
each under its time limit, records a part that fails or overruns and goes on with the next."""

import argparse
import contextlib
import gc
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

import benchmarks.gpu
from benchmarks.common import RESULTS_DIR
from benchmarks.gpu import correctness, pipeline, speed, trial
from benchmarks.gpu.environment import environment
from benchmarks.gpu.plan import BUDGET_S, dry_run_plan, gpu_plan
from benchmarks.gpu.report import Report
from trials.measure import cpu_threads

PARTS = {"correctness": correctness.run, "trial": trial.run, "speed": speed.run, "pipeline": pipeline.run}


class PartTimeout(BaseException):
    """Raised by the alarm when a part overruns its limit. A BaseException, so that the per-check
    `except Exception` inside a part does not swallow it and carry on past the limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise PartTimeout in this (main) thread after `seconds`; a no-op where SIGALRM is unavailable."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum, frame):
        raise PartTimeout(f"stopped at its limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:  # a timer set by the caller (pytest-timeout, say) runs on
            left = max(1e-3, outer_delay - (time.monotonic() - start))
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks gpu", description=benchmarks.gpu.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="the same code paths on CPU: tiny models, small batches, 1-2 steps (CI runs it)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="folder for gpu.csv, gpu.json, gpu.md (default benchmarks/results/; "
                   "with --cpu-dry-run a new temporary folder)")  # fmt: skip
    p.add_argument("--only", nargs="+", choices=list(PARTS), metavar="PART",
                   help=f"run only these parts ({', '.join(PARTS)}), e.g. to re-check one after a fix")  # fmt: skip
    args = p.parse_args(argv)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out} is a file; give a folder (it is created if missing)")  # exit code 2
    return args


def output_folder(args: argparse.Namespace) -> Path:
    if args.out is None:
        return Path(tempfile.mkdtemp(prefix="tokensweep-gpu-dry-run-")) if args.cpu_dry_run else RESULTS_DIR
    return args.out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = output_folder(args)
    if args.cpu_dry_run:
        plan = dry_run_plan()
    elif torch.cuda.is_available():
        plan = gpu_plan(torch.device("cuda"))
    else:
        print("python -m benchmarks gpu: no CUDA device is visible; run it on a GPU machine, or add --cpu-dry-run "
              "to run the same code paths on CPU", file=sys.stderr)  # fmt: skip
        return 2
    names = args.only or list(PARTS)
    with cpu_threads(plan.threads):
        report = Report(environment(plan.device), plan.as_dict())
        dry = ", CPU dry run (tiny sizes: the figures mean nothing)" if plan.dry_run else ""
        print(f"device check on {report.environment['device']}, torch {torch.__version__}{dry}", flush=True)
        context: dict = {}
        for name in names:
            run_part(name, plan, report, context)
            report.write(out)
    print()
    print(report.table())
    failed = report.failures()
    print(f"\n{len(failed)} failed check(s); results: {out}/gpu.csv, gpu.json, gpu.md", flush=True)
    return 1 if failed else 0


def run_part(name: str, plan, report: Report, context: dict) -> None:
    limit = plan.limit_s(name)
    budget = None if plan.dry_run else BUDGET_S[name]
    print(f"[{name}]" + (f" budget {budget} s" if budget else ""), flush=True)
    start = time.perf_counter()
    try:
        with time_limit(limit):
            PARTS[name](plan, report, context)
    except (Exception, PartTimeout) as err:
        report.fail(name, "part stopped", err)
    elapsed = time.perf_counter() - start
    report.part_done(name, elapsed, budget)
    print(f"[{name}] {elapsed:.0f} s", flush=True)
    gc.collect()  # the part's models, loaders and their workers go now, not during the next part's timings
    if plan.device.type == "cuda":
        torch.cuda.empty_cache()
