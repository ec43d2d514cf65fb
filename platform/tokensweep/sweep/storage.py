"""Where Tune keeps a sweep (`<storage>/<name>`, a path or s3://...), and whether it may start, resume
or start over there. Checked before anything is written."""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile

from ray import tune

from tokensweep.errors import SpecError
from tokensweep.spec import SweepSpec
from tokensweep.sweep import tune_state
from tokensweep.sweep.options import RunOptions


def is_uri(path: str) -> bool:
    return "://" in path


def check_storage(spec: SweepSpec, options: RunOptions) -> str:
    """The sweep's Tune path, if it exists as --resume/--fresh expect (and, to resume, holds only state files
    this driver wrote: tune_state.check_recorded); else a SpecError. No writes."""
    path = options.tune_path(spec.name)
    exists = tune.Tuner.can_restore(path)
    if options.resume and not exists:
        raise SpecError(f"--resume: no sweep named {spec.name!r} in {options.storage} (nothing to resume; run without --resume)")
    if exists and not options.resume and not options.fresh:
        raise SpecError(
            f"sweep {spec.name!r} already exists in {options.storage}: pass --resume to continue it, "
            f"--fresh to start it over, or --set sweep.name=NEW"
        )
    if options.resume:
        tune_state.check_recorded(path)
    return path


def delete_tune_dir(path: str) -> None:
    if is_uri(path):
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
        try:
            fs.delete_dir(fs_path)
        except FileNotFoundError:
            pass
    else:
        shutil.rmtree(path, ignore_errors=True)


PROBE_BYTES = 1 << 20  # about what a small trial's checkpoint needs


def full_storage(path: str) -> str | None:
    """Why a local Tune storage cannot take another checkpoint (its disk or quota is full), or None.
    Found by writing a probe file, which is deleted again (s3:// is never full)."""
    if is_uri(path):
        return None
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    try:
        with tempfile.TemporaryFile(dir=directory) as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return os.strerror(err.errno)
    return None


def report_full(tune_path: str, why: str) -> str:
    """Say in one line that the sweep stopped because its storage is full; the parent run's failure reason."""
    print(
        f"tokensweep run: error: Tune's storage {tune_path} is full ({why}): trials cannot save their checkpoints "
        "there; free space, then --resume continues the sweep",
        file=sys.stderr,
        flush=True,
    )
    return f"OSError: Tune's storage {tune_path} is full ({why})"
