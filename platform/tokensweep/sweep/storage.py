"""Where Tune keeps a sweep (`<storage>/<name>`, a path or s3://...), and whether it may start, resume
or start over there. Checked before anything is written."""

from __future__ import annotations

import shutil

from ray import tune

from tokensweep.errors import SpecError
from tokensweep.spec import SweepSpec
from tokensweep.sweep.options import RunOptions


def is_uri(path: str) -> bool:
    return "://" in path


def check_storage(spec: SweepSpec, options: RunOptions) -> str:
    """The sweep's Tune path, if it exists as --resume/--fresh expect; else a SpecError. No writes."""
    path = options.tune_path(spec.name)
    exists = tune.Tuner.can_restore(path)
    if options.resume and not exists:
        raise SpecError(f"--resume: no sweep named {spec.name!r} in {options.storage} (nothing to resume; run without --resume)")
    if exists and not options.resume and not options.fresh:
        raise SpecError(
            f"sweep {spec.name!r} already exists in {options.storage}: pass --resume to continue it, "
            f"--fresh to start it over, or --set sweep.name=NEW"
        )
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
