"""Checkpoints are written atomically: a process killed in the middle of writing one leaves the previous
checkpoint intact, and resume never loads the half-written file.

A real trial writes its epoch-1 checkpoint; a second process resumes it for epoch 2 and is SIGKILLed
while `save_checkpoint` is inside `torch.save` (its file object pauses after the first 64 KiB and says
so, so the kill lands mid-write every time, not by luck of timing). Then the epoch-1 checkpoint still
loads and a resumed trial continues from it. (Unpickling code from a checkpoint is refused: see
test_rel_bad_input.py, case ckpt-pickled-code.)
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from trials import TrialConfig, run_trial
from trials.train.checkpoint import FILENAME, load_checkpoint

CONFIG = dict(model="vit_tiny_patch", epochs=2, tiny_train_per_class=20, tiny_val_per_class=5, batch_size=32,
              warmup_epochs=0.0, bench_steps=1, bench_batch=8, threads=1, measure=False)  # fmt: skip

KILLED_WRITER = r"""
import json, os, sys, time, types
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

# save_checkpoint's `os`, except that the files it opens with fdopen pause mid-write
real_fdopen = os.fdopen
pausing_os = types.ModuleType("os")
pausing_os.__dict__.update(vars(os))
pausing_os.fdopen = lambda fd, *args, **kwargs: PausingFile(real_fdopen(fd, *args, **kwargs))
checkpoint.os = pausing_os
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
    assert partial.name.startswith(".checkpoint-") and partial.stat().st_size >= 65536
    with pytest.raises(Exception):  # it really is half a checkpoint
        torch.load(partial, weights_only=True)

    assert (ckpt / FILENAME).read_bytes() == saved  # the previous checkpoint, untouched
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 1 and state["metrics"]["top1"] == first["top1"]
    resumed = run_trial(TrialConfig.smoke(**CONFIG), resume_from=str(ckpt), progress=False)
    assert resumed["epoch"] == 2  # continued after epoch 1, from the intact file
