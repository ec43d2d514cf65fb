"""Files and folders that appear whole or not at all: built beside their destination, renamed into place.

A crash, a signal or a reader polling the folder sees the old file or the new one, never half of it.
Beside it, in the same folder, because a rename is atomic only within one file system. Here, in the
layer every other imports, so trials, dashboards and the platform share one writer.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o644, durable: bool = False) -> Iterator[Path]:
    """Yield a temp file path beside `path`; renamed onto `path` with `mode` when the block ends
    (`durable`: flushed to disk first, so a power cut too leaves the old file or the new), removed
    if the block raises. The temp name keeps the suffix, for writers that pick a format by it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    with _removed_on_error(Path(name)) as tmp:
        yield tmp
        if durable:
            _fsync(tmp)
        os.chmod(tmp, mode)  # mkstemp makes 0600
        os.replace(tmp, target)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def current_umask() -> int:
    """The process's umask, read without changing it (Linux: /proc/self/status), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """Yields a temp folder beside dest; renamed to dest when the block ends, removed if it raises.

    dest must not exist or be an empty folder (callers check first, with their own message).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _removed_on_error(Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))) as tmp:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700: the folder gets what mkdir would give
        yield tmp
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)


@contextlib.contextmanager
def _removed_on_error(tmp: Path) -> Iterator[Path]:
    try:
        yield tmp
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
