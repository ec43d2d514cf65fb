"""Ctrl-C and SIGTERM: a sweep or a trial stops in order, says how to go on, and --resume finishes it.

- `tokensweep run` gets SIGTERM (a scheduler's preemption) mid-sweep, on the shared Ray head: within 30 s
  one line (what finished, what was interrupted, the --resume command), exit code 143, no MLflow run
  left RUNNING (the interrupted ones KILLED with the epoch they reached), no traceback and none of Ray's
  own hints; then --resume finishes the sweep with one run per trial, every epoch once, and clears the
  parent run's failure reason of an earlier session.
- Ctrl-C in a terminal (SIGINT to the driver's whole process group) on a local Ray: the same, exit 130;
  pressed twice, the same again (the second is answered, not acted on).
- SIGHUP (its terminal closed) to the driver alone: a SIGTERM, exit 129; no process of its local Ray is left.
- a sweep whose trials no node can hold now, on a cluster: a note says what they wait for; Ctrl-C ends it.
- SIGTERM to a trial's Ray worker (a node being drained): the trial is retried; the worker ends without a
  traceback or a stack dump.
- `tokensweep trial --checkpoint-dir` gets SIGTERM / SIGINT: exit 143 / 130, the last finished epoch's
  checkpoint intact, one line saying how to resume; resuming finishes the trial.
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import psutil
from mlflow import MlflowClient

from helpers import base_env, CLI, run_cli
from rel_helpers import (INTERRUPTIBLE_SPEC, INTERRUPTIBLE_TRIALS, TINY_TRIAL, interrupted_sweep, logged_steps, sets, start_cli,
                         stop_process_group, trial_process, tree, wait_for)  # fmt: skip
from sweep_helpers import metric_steps, poll_db, sweep_runs


RAY_HINTS = ("Tuner.restore", "Stop signal received", "Trials did not complete", "SIGTERM received", "Traceback")


def _spec(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(INTERRUPTIBLE_SPEC.format(name=name))
    return path


def _send(signum, to_group=False):
    """What interrupts the sweep: `signum` to its driver, or to the driver's whole process group (Ctrl-C in a
    terminal)."""
    return lambda proc: (os.killpg if to_group else os.kill)(proc.pid, signum)


def _check_stopped(db, name, output, signum) -> list:
    """What a stopped sweep must leave: one line, nothing RUNNING, the interrupted runs KILLED at their epoch."""
    line = output.strip().splitlines()[-1]
    how = f"{'interrupted' if signum == signal.SIGINT else 'terminated'} by {signal.Signals(signum).name}"
    assert re.match(rf"tokensweep run: {how}: [12] of 3 trial\(s\) finished, ", line), output[-3000:]
    assert line.endswith("--resume` continues the sweep") and "interrupted (" in line, line
    for words in RAY_HINTS:
        assert words not in output, (words, output[-4000:])
    parents, children = sweep_runs(db, name)
    assert [p.info.status for p in parents] == ["KILLED"]
    assert parents[0].data.tags["tokensweep.stopped"].endswith(f"({signal.Signals(signum).name})")
    assert all(c.info.status != "RUNNING" for c in children)
    killed = [c for c in children if c.info.status == "KILLED"]
    assert killed, [(c.info.run_name, c.info.status) for c in children]
    for run in killed:  # the epoch it reached, as logged, and named in the line
        epoch = int(run.data.tags["tokensweep.interrupted_at_epoch"])
        assert epoch == max(metric_steps(db, run.info.run_id, "top1"), default=0)
        assert run.info.run_name in line
    return killed


def test_sigterm_stops_the_sweep_in_order_and_resume_finishes_it_clearing_an_old_failure(tmp_path, ray_head):
    db = tmp_path / "mlflow.db"
    args = ["run", _spec(tmp_path, "sig"), "--address", ray_head.address, "--quiet"]
    code, output, took = interrupted_sweep(args, tmp_path, ray_head.env, _send(signal.SIGTERM), db)
    assert code == 143, output[-4000:]
    assert took < 30, took
    _check_stopped(db, "sig", output, signal.SIGTERM)

    (parent,), _ = sweep_runs(db, "sig")  # a parent run an older tokensweep left FAILED by two Ctrl-C
    MlflowClient(f"sqlite:///{db}").set_tag(parent.info.run_id, "failure_reason", "SystemError: CoreWorker.wait")
    resumed = run_cli(args + ["--resume"], cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=0)
    assert "Traceback" not in resumed.stdout + resumed.stderr, resumed.stderr[-4000:]
    parents, children = sweep_runs(db, "sig")
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert "failure_reason" not in parents[0].data.tags, parents[0].data.tags
    assert parents[0].data.tags["tokensweep.previous_failure"] == "SystemError: CoreWorker.wait"
    assert sorted(c.info.run_name for c in children) == INTERRUPTIBLE_TRIALS  # one run per trial
    for run in children:
        epochs = int(run.data.params["epochs"])
        assert run.info.status == "FINISHED"
        assert metric_steps(db, run.info.run_id, "top1") == list(range(1, epochs + 1))  # every epoch, once
        assert "tokensweep.interrupted_at_epoch" not in run.data.tags  # it is not interrupted any more


def _names(processes: list[psutil.Process]) -> list[str]:
    """`pid name` of those still running."""
    names = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                names.append(f"{process.pid} {process.name()}")
        except psutil.NoSuchProcess:
            pass
    return names


def _signal_local_sweep(tmp_path, env, name, send) -> tuple[int, str, float]:
    """INTERRUPTIBLE_SPEC on a local Ray, in a process group of its own; mid-sweep, `send(proc)`; (exit code,
    output, seconds from the signal to the exit)."""
    args = ["run", _spec(tmp_path, name), "--num-cpus", "2", "--quiet"]
    return interrupted_sweep(args, tmp_path, env, send, tmp_path / "mlflow.db")


def test_ctrl_c_on_a_local_ray_stops_the_sweep_in_order_and_a_second_is_answered_not_acted_on(tmp_path, ray_token_env):
    """Ctrl-C in a terminal (SIGINT to the whole process group), pressed twice while Tune stops: the first stops
    the sweep in order ("already stopping" proves it was acted on), the second changes nothing (resuming after
    it, and clearing an old failure: the SIGTERM test)."""

    def ctrl_c_twice(proc):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)  # while Tune stops
        os.killpg(proc.pid, signal.SIGINT)

    env = {**ray_token_env, "XDG_STATE_HOME": str(tmp_path / "state")}
    code, output, took = _signal_local_sweep(tmp_path, env, "twice", ctrl_c_twice)
    assert code == 130, output[-4000:]
    assert took < 30, took
    _check_stopped(tmp_path / "mlflow.db", "twice", output, signal.SIGINT)
    assert "SIGINT again: already stopping" in output and "SystemError" not in output, output[-4000:]
    assert not list(tmp_path.glob("ray_results/.twice.lock"))  # the sweep's lock is released


def test_sighup_stops_the_sweep_as_sigterm_and_leaves_no_ray_process(tmp_path, ray_token_env):
    ray = []  # the local Ray's processes, the agents among them

    def hang_up(proc):
        ray.extend(tree(proc.pid)[1:])
        assert any(" ray::" in name for name in _names(ray)), _names(ray)
        os.kill(proc.pid, signal.SIGHUP)  # the driver alone: its terminal closed, nohup not used

    code, output, _ = _signal_local_sweep(tmp_path, ray_token_env, "hup", hang_up)
    assert code == 129, output[-4000:]
    _check_stopped(tmp_path / "mlflow.db", "hup", output, signal.SIGHUP)
    assert _names(ray) == []  # ended before the driver exits, however Ray's own shutdown went


def test_trials_no_node_can_hold_are_explained_and_ctrl_c_ends_the_wait(tmp_path, ray_head):
    """resources.cpus = 3 on a cluster of 2-CPU nodes: a note says what the trials wait for."""
    args = ["run", _spec(tmp_path, "big"), "--address", ray_head.address, "--quiet", "--set", "resources.cpus=3"]
    proc, log = start_cli(args, tmp_path, ray_head.env)
    try:
        note = "each trial needs resources.cpus = 3 on one node, and the largest node of the cluster has 2 CPU(s) now"
        wait_for(lambda: note in log.read_text(), 120, "the note on what the trials wait for", alive=lambda: proc.poll() is None)
        assert "autoscaler" in log.read_text()
        started = "select count(*) from tags where key = 'tokensweep.tune_started_at'"  # the parent run, just before Tune
        wait_for(lambda: poll_db(tmp_path / "mlflow.db", started) == [(1,)], 120, "Tune to start", alive=lambda: proc.poll() is None)
        time.sleep(2)  # Tune's trials wait for resources now (none could be placed)
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        stop_process_group(proc)
    output = log.read_text()
    assert proc.returncode == 130, output[-4000:]
    assert output.strip().splitlines()[-1].startswith("tokensweep run: interrupted by SIGINT: 0 of 3 trial(s) finished, 3 not started")
    parents, children = sweep_runs(tmp_path / "mlflow.db", "big")
    assert [p.info.status for p in parents] == ["KILLED"] and children == []


# one trial of 2 epochs, a few seconds each: SIGTERM to its worker lands in epoch 2, after epoch 1's checkpoint
DRAINED = TINY_TRIAL + ["trial.epochs=2", "trial.tiny_train_per_class=300", "trial.workers=0", "resources.cpus=1",
                        "resources.gpus=0", "failure.max_failures=1", "tracking.system_metrics=false", "bench.enabled=false"]  # fmt: skip


def test_sigterm_to_a_trial_worker_ends_it_quietly_and_the_trial_is_retried(tmp_path, ray_head):
    spec = tmp_path / "drained.toml"
    spec.write_text('[sweep]\nname = "drained"\n\n[[variants]]\nname = "drained"\n')
    db = tmp_path / "mlflow.db"
    proc, log = start_cli(["run", spec, "--address", ray_head.address, "--quiet", *sets(DRAINED)], tmp_path, ray_head.env)
    try:
        alive = lambda: proc.poll() is None  # noqa: E731
        wait_for(lambda: logged_steps(db, "drained") == [1], 300, "the trial's first epoch", interval=0.05, alive=alive)
        worker = wait_for(lambda: trial_process(ray_head.proc.pid, "drained"), 30, "the trial's worker", interval=0.05, alive=alive)
        os.kill(worker.pid, signal.SIGTERM)  # a Ray worker of our own head, mid-epoch 2
        proc.wait(timeout=400)
    finally:
        stop_process_group(proc)
    output = log.read_text()
    assert proc.returncode == 0, output[-4000:]
    (run,) = sweep_runs(db, "drained")[1]
    assert run.info.status == "FINISHED" and run.data.tags["tokensweep.retries"] == "1"
    assert metric_steps(db, run.info.run_id, "top1") == [1, 2]
    # what the worker itself wrote, in its stdout and stderr files of the head's session logs (a sweep's driver
    # prints them only with -v): no traceback, no stack dump
    written = sorted(Path(ray_head.temp_dir).glob(f"session_*/logs/worker-*-{worker.pid}.*"))
    assert {f.suffix for f in written} == {".out", ".err"}, written
    worker_lines = [line for f in written for line in f.read_text(errors="replace").splitlines()]
    for words in ("Traceback", "Exception ignored", "Stack trace", "SystemExit", "Fatal Python error", "Extension modules"):
        assert not [line for line in worker_lines if words in line], (words, "\n".join(worker_lines)[-3000:])


# --- tokensweep trial ---------------------------------------------------------------------------------------

# one torch thread: two threads on a loaded 2-core machine make an epoch ten times slower
TRIAL_ARGS = ["trial", "--smoke", "--model", "vit_tiny_patch", "--epochs", "40", "--tiny-train-per-class", "50",
              "--tiny-val-per-class", "5", "--threads", "1", "--batch-size", "32", "--warmup-epochs", "0",
              "--bench-steps", "1", "--bench-batch", "8", "--workers", "0", "--quiet"]  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_trial_stopped_by_a_signal_keeps_its_last_checkpoint_and_resumes(tmp_path, signum):
    ckpt = tmp_path / "ckpt"
    args = TRIAL_ARGS + ["--checkpoint-dir", ckpt]
    proc = subprocess.Popen(CLI + [str(a) for a in args], cwd=tmp_path, env=base_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: len(_log_epochs(ckpt)) >= 2, 300, "two finished epochs", alive=lambda: proc.poll() is None)
        os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signum, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    from trials.train.checkpoint import load_checkpoint

    epoch = load_checkpoint(ckpt)["epoch"]  # loads: written whole
    assert epoch >= 2 and epoch == max(_log_epochs(ckpt))  # the last epoch that finished, nothing after it
    how = "interrupted by SIGINT" if signum == signal.SIGINT else "terminated by SIGTERM"
    assert lines[0] == (f"tokensweep trial: {how}; the checkpoint of epoch {epoch} is in {ckpt}: the same command with "
                        f"--resume {ckpt} continues from there")  # fmt: skip
    assert out == ""  # no final metrics: the trial did not finish

    short = [a if a != "40" else str(epoch + 1) for a in args]  # one more epoch, from the checkpoint
    done = run_cli(short + ["--resume", ckpt], cwd=tmp_path, env=base_env(), timeout=300, check_rc=0)
    assert json.loads(done.stdout.strip().splitlines()[-1])["epoch"] == epoch + 1
    assert _log_epochs(ckpt) == list(range(1, epoch + 2))  # each epoch once in the log


def _log_epochs(ckpt: Path) -> list[int]:
    try:
        return [json.loads(line)["epoch"] for line in (ckpt / "log.jsonl").read_text().splitlines() if line.strip()]
    except (FileNotFoundError, ValueError, KeyError):
        return []
