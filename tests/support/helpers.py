"""Helpers every kind of test uses: the `tokensweep` CLI in a subprocess, free ports, a fake clock,
a stand-in for Tune's trials, and the definition of Pareto dominance.

Light on purpose (no torch, Ray or MLflow at import): the dashboards' tests import it too.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
REPO = SUPPORT.parents[1]
SWEEPS = REPO / "platform" / "sweeps"
BIN = Path(sys.executable).parent
CLI = [sys.executable, "-m", "tokensweep.cli"]
# A sweep whose test is not about trials side by side runs them one at a time: on 2 cores a second trial worker
# mostly adds its imports (torch, Ray Tune): a 1-epoch smoke sweep on a shared head took 14.4 CPU-s with two
# workers and 10.7 with one, at about the same wall time (10.1 vs 10.5 s).
ONE_AT_A_TIME = "resources.max_concurrent_trials=1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra) -> dict:
    """This environment without the caller's Ray, MLflow, pytest and tokensweep settings, plus EXTRA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "PYTEST_", "TOKENSWEEP_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args, cwd=None, env=None, timeout=300, check_rc=None, preexec_fn=None) -> subprocess.CompletedProcess:
    """`tokensweep ARGS` as a user runs it: a process of its own (in `base_env()` unless ENV is given).
    CHECK_RC: the exit code it must end with, else the test fails with the ends of its output."""
    argv = CLI + [str(a) for a in args]
    proc = subprocess.run(argv, cwd=cwd, env=base_env() if env is None else env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)  # fmt: skip
    if check_rc is not None and proc.returncode != check_rc:
        raise AssertionError(
            f"tokensweep {' '.join(map(str, args))} -> rc {proc.returncode}, expected {check_rc}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return proc


class Clock:
    """A clock that moves only when the test moves it (`now`) or when the code under test sleeps on it."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def dominates(a, b, maximize) -> bool:
    """The definition: at least as good in both, strictly better in one."""
    better_or_equal = all((ai >= bi) if up else (ai <= bi) for ai, bi, up in zip(a, b, maximize))
    strictly = any((ai > bi) if up else (ai < bi) for ai, bi, up in zip(a, b, maximize))
    return better_or_equal and strictly


def run_with_grad(fn, x, weight):
    """FN(x) and the gradient of sum(FN(x) * WEIGHT) with respect to x, on a copy of x."""
    z = x.detach().clone().requires_grad_(True)
    out = fn(z)
    (out * weight).sum().backward()
    return out.detach(), z.grad
