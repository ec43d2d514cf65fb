"""Symlink loops in a data folder, through the real CLI: `tokensweep run`'s pre-flight check (before Ray
starts) and `tokensweep trial` list every image once, finish, and say in one stderr line per split what
they did not follow.

`up -> ..` in every train class folder used to branch without end (the pre-flight check never
returned), `loop -> .` in a val class folder listed it ~40 times. Each command runs as a process of its
own with a timeout, so a regression fails the test instead of hanging the suite.
"""

import json
import os

from helpers import SWEEPS, run_cli
from rel_helpers import image_folder

TRIAL = ["trial", "--smoke", "--model", "vit_tiny_patch", "--workers", "0", "--batch-size", "4", "--epochs", "1",
         "--bench-steps", "1", "--bench-batch", "4", "--quiet"]  # fmt: skip
TIMEOUT = 300  # s: the listing takes milliseconds; this only bounds a regression that never ends


def looped_folder(root):
    data = image_folder(root / "data")
    train = sorted(p for p in (data / "train").iterdir() if p.is_dir())
    for cls in train:
        os.symlink("..", cls / "up")
    val = sorted(p for p in (data / "val").iterdir() if p.is_dir())
    os.symlink(".", val[0] / "loop")
    return data


def notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note: ")]


def test_run_preflight_finishes_and_notes_each_looped_split(tmp_path):
    data = looped_folder(tmp_path)
    # 24 train images: a batch that fits them (the pre-flight refuses smoke.toml's 64, which no trial could fill)
    spec_args = ["run", SWEEPS / "smoke.toml", "--set", 'trial.dataset="imagefolder"', "--set", "trial.batch_size=8",
                 "--data-dir", data, "--dry-run"]  # fmt: skip
    proc = run_cli(spec_args, cwd=tmp_path, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    train, val = notes(proc.stderr)
    assert train.startswith(f"note: {data / 'train'}: did not enter 3 folder(s)"), train
    assert val.startswith(f"note: {data / 'val'}: did not enter 1 folder(s)") and "/loop -> " in val, val


def test_trial_on_a_looped_folder_trains_on_each_image_once(tmp_path):
    data = looped_folder(tmp_path)
    proc = run_cli(TRIAL + ["--dataset", "imagefolder", "--data-dir", data], cwd=tmp_path, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert len(notes(proc.stderr)) == 2, proc.stderr  # train and val, once each
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert metrics["epoch"] == 1 and metrics["bad_images"] == 0
