"""Checkpoints are written atomically: a process killed in the middle of writing one leaves the previous
checkpoint intact, and resume never loads the half-written file.

A real trial writes its epoch-1 checkpoint; a second process resumes it for epoch 2 and is SIGKILLed
while `save_checkpoint` is inside `torch.save` (its file object pauses after the first 64 KiB and says
so, so the kill lands mid-write every time, not by luck of timing). Then the epoch-1 checkpoint still
loads and a resumed trial continues from it. (Unpickling code from a checkpoint is refused: see
test_rel_bad_input.py, case ckpt-pickled-code.)

Then `tokensweep trial --resume DIR` (the real CLI's entry point, in this process) on checkpoints that load but
do not fit, or do not load: weights of a model trained on other classes or with weights cut out, an
optimizer state of another parameter list, an epoch past --epochs, a mid-run epoch or a run without
measurements taken as a finished trial, an empty folder, an empty file, random bytes, a file cut off
at its end, a tensor or a dict that is no trial's checkpoint. Each is exit 2, one stderr line naming
the checkpoint and what is wrong, no traceback, the checkpoint untouched.
"""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tokensweep.cli import main
from trials import TrialConfig, run_trial
from trials.train.checkpoint import FILENAME, load_checkpoint, save_checkpoint

CONFIG = dict(model="vit_tiny_patch", epochs=2, tiny_train_per_class=20, tiny_val_per_class=5, batch_size=32,
              warmup_epochs=0.0, bench_steps=1, bench_batch=8, threads=1, measure=False)  # fmt: skip

KILLED_WRITER = r"""
import builtins, json, sys, time
import trials.train.checkpoint as checkpoint
from trials import TrialConfig, run_trial

class PausingFile:
    '''The checkpoint's temp file: after 64 KiB, say so and wait to be killed.'''
    def __init__(self, f):
        self.f, self.written = f, 0
    def write(self, data):
        n = self.f.write(data)
        self.written += n
        if self.written >= 65536:
            self.f.flush()
            print("MID-WRITE", flush=True)
            time.sleep(600)
        return n
    def __getattr__(self, name):
        return getattr(self.f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)

# save_checkpoint's `open`, except that the files it opens pause mid-write
checkpoint.open = lambda *args, **kwargs: PausingFile(builtins.open(*args, **kwargs))
directory = sys.argv[1]
run_trial(TrialConfig.smoke(**json.loads(sys.argv[2])), resume_from=directory, checkpoint_dir=directory, progress=False)
print("FINISHED WITHOUT BEING KILLED", flush=True)
"""


def test_kill_during_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    first = run_trial(TrialConfig.smoke(**{**CONFIG, "epochs": 1}), checkpoint_dir=str(ckpt), progress=False)
    saved = (ckpt / FILENAME).read_bytes()

    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(ckpt), json.dumps(CONFIG)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        line = writer.stdout.readline()  # blocks until the writer is inside torch.save (or ends)
        assert line.strip() == "MID-WRITE", (line, writer.stderr.read()[-3000:] if writer.poll() is not None else "")
        os.killpg(writer.pid, signal.SIGKILL)
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    (partial,) = [p for p in ckpt.iterdir() if p.name not in (FILENAME, "log.jsonl")]  # the temp file it was writing
    assert partial.name.startswith(f".{FILENAME}.") and partial.stat().st_size >= 65536
    with pytest.raises(Exception):  # it really is half a checkpoint
        torch.load(partial, weights_only=True)

    assert (ckpt / FILENAME).read_bytes() == saved  # the previous checkpoint, untouched
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 1 and state["metrics"]["top1"] == first["top1"]
    resumed = run_trial(TrialConfig.smoke(**CONFIG), resume_from=str(ckpt), progress=False)
    assert resumed["epoch"] == 2  # continued after epoch 1, from the intact file


# --- `trial --resume` on checkpoints that load but do not fit, or do not load ----------------------------------

FLAGS = ["--model", "vit_tiny_patch", "--tiny-train-per-class", "20", "--tiny-val-per-class", "5", "--batch-size", "32",
         "--warmup-epochs", "0", "--bench-steps", "1", "--bench-batch", "8", "--threads", "1", "--quiet"]  # fmt: skip


# what Python shows of warnings outside __main__ by default (the CLI's own process): all but these, once per place
HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def trial_cli(capfd, *args) -> subprocess.CompletedProcess:
    """`tokensweep trial --smoke` with CONFIG's settings (as flags) and ARGS: the CLI's entry point in this process
    (torch imported once, not per case), its output as its own process would print it: file descriptors 1 and 2,
    with the warnings and log records a process of its own shows on stderr (here pytest would collect them)."""
    argv = ["trial", "--smoke", *FLAGS, *map(str, args)]
    capfd.readouterr()
    last_resort = logging.StreamHandler(sys.stderr)  # logging's own for a process without handlers: WARNING and up
    last_resort.setLevel(logging.WARNING)
    logging.getLogger().addHandler(last_resort)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            warnings.simplefilter("default")
            for category in HIDDEN_WARNINGS:
                warnings.simplefilter("ignore", category)
            try:
                rc = main(argv)
            except SystemExit as exit_:  # argparse
                rc = exit_.code
    finally:
        logging.getLogger().removeHandler(last_resort)
    out, err = capfd.readouterr()
    err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return subprocess.CompletedProcess(argv, rc, out, err)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Real checkpoints of CONFIG's trial, and copies of them with one thing wrong each."""
    root = tmp_path_factory.mktemp("resume")
    made = {}

    def keep_epoch_1(metrics, directory):
        if metrics["epoch"] == 1:
            shutil.copytree(directory, root / "epoch-1-of-2")

    run_trial(TrialConfig.smoke(**CONFIG), report=keep_epoch_1, checkpoint_dir=str(root / "epoch-2-of-2"), progress=False)
    made["epoch-1-of-2"], made["epoch-2-of-2"] = root / "epoch-1-of-2", root / "epoch-2-of-2"
    run_trial(TrialConfig.smoke(**{**CONFIG, "epochs": 1, "tiny_classes": 4}), checkpoint_dir=str(root / "4-classes"), progress=False)
    made["4-classes"] = root / "4-classes"
    state = load_checkpoint(made["epoch-2-of-2"])

    def variant(name: str, change) -> None:
        changed = {**state, "model": dict(state["model"]), "optimizer": dict(state["optimizer"])}
        change(changed)
        made[name] = save_checkpoint(root / name, changed).parent

    variant("weights-cut-out", lambda s: [s["model"].pop(k) for k in ("pos_embed", "cls_token")])
    variant("optimizer-of-fewer-weights", lambda s: s["optimizer"].update(
        param_groups=[{**g, "params": g["params"][:-1]} for g in state["optimizer"]["param_groups"]]))  # fmt: skip
    variant("no-config", lambda s: s.pop("config"))

    def raw(name: str, data: bytes) -> None:
        (root / name).mkdir()
        (root / name / FILENAME).write_bytes(data)
        made[name] = root / name

    full = (made["epoch-2-of-2"] / FILENAME).read_bytes()
    raw("empty-file", b"")
    raw("random-bytes", np.random.default_rng(0).bytes(4096))
    raw("cut-off-end", full[:-5])
    (root / "empty-folder").mkdir()
    made["empty-folder"] = root / "empty-folder"
    made["a-tensor"] = save_checkpoint(root / "a-tensor", torch.zeros(3)).parent
    return made


RESUME_CASES = {  # name: (checkpoint, extra flags, fragment of the one stderr line)
    "other-classes": ("4-classes", ["--epochs", "2"], "model weights do not match vit_tiny_patch: shape of head.weight [4, "),
    "weights-cut-out": ("weights-cut-out", ["--epochs", "3"], "model weights do not match vit_tiny_patch: missing cls_token, pos_embed"),
    "optimizer-of-fewer-weights": ("optimizer-of-fewer-weights", ["--epochs", "3"], "its optimizer state does not fit this model"),
    "past-epochs": ("epoch-2-of-2", ["--epochs", "1"], "is at epoch 2, past epochs=1 of this trial: resume with epochs >= 2"),
    "mid-run-as-finished": ("epoch-1-of-2", ["--epochs", "1"], "is epoch 1 of a 2-epoch run, not the end of a 1-epoch one"),
    "finished-without-measurements": ("epoch-2-of-2", ["--epochs", "2", "--measure"], "holds no final measurements"),
    "no-config": ("no-config", ["--epochs", "3"], "is not a trial checkpoint: lacks config"),
    "a-tensor": ("a-tensor", ["--epochs", "3"], "holds a Tensor, not a trial checkpoint"),
    "empty-folder": ("empty-folder", ["--epochs", "3"], "no checkpoint at"),
    "empty-file": ("empty-file", ["--epochs", "3"], "is unreadable (truncated or not a checkpoint): the file is empty"),
    "random-bytes": ("random-bytes", ["--epochs", "3"], "is unreadable (truncated or not a checkpoint): not a torch checkpoint"),
    "cut-off-end": ("cut-off-end", ["--epochs", "3"], "is unreadable (truncated or not a checkpoint)"),
}  # fmt: skip


def snapshot(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("name", list(RESUME_CASES))
def test_resume_from_a_checkpoint_that_does_not_fit_is_one_line_exit_2(name, checkpoints, capfd):
    which, flags, fragment = RESUME_CASES[name]
    directory = checkpoints[which]
    before = snapshot(directory)
    proc = trial_cli(capfd, "--resume", directory, *flags)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines[0].startswith("tokensweep trial: error: ") and fragment in lines[0], lines[0]
    assert str(directory) in lines[0]  # names the checkpoint
    assert proc.stdout == ""  # no metrics line: nothing was returned as a result
    assert snapshot(directory) == before


def test_resume_of_fitting_checkpoints_still_works(checkpoints, capfd):
    """The same checkpoints where they do fit: continued for another epoch, or returned as finished."""
    directory = checkpoints["epoch-2-of-2"]
    saved = load_checkpoint(directory)["metrics"]
    finished = trial_cli(capfd, "--resume", directory, "--epochs", "2", "--no-measure")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert json.loads(finished.stdout)["top1"] == saved["top1"]  # its own result, nothing retrained
    longer = trial_cli(capfd, "--resume", directory, "--epochs", "3", "--no-measure")
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert json.loads(longer.stdout)["epoch"] == 3


def test_an_fp32_checkpoint_resumes_with_a_live_gradient_scaler(checkpoints, tmp_path, monkeypatch):
    """A checkpoint from a CPU / fp32 run holds an empty scaler state; resumed where fp16 is on (a GPU), the
    scaler starts fresh instead of raising "The source state dict is empty". No GPU here: the trial's
    GradScaler is created enabled (torch's CPU GradScaler: the same class, the same load_state_dict)."""
    real = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device, enabled=True: real(device, enabled=True))
    resumed = shutil.copytree(checkpoints["epoch-2-of-2"], tmp_path / "ckpt")
    final = run_trial(TrialConfig.smoke(**{**CONFIG, "epochs": 3}), resume_from=str(resumed), progress=False)
    assert final["epoch"] == 3
