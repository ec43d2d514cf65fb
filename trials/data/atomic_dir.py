"""A folder that appears whole or not at all: built beside its destination, renamed into place."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(dest: Path):
    """Yields a temp folder beside dest; renamed to dest when the block ends, removed if it raises.

    dest must not exist or be an empty folder (callers check first, with their own message).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
