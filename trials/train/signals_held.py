"""SIGINT / SIGTERM held back while a trial writes what belongs together: an epoch's checkpoint and its
log line. A signal in between would leave the log one epoch ahead of the checkpoint a resume starts from."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """A signal that arrives inside the block reaches the handler in place when the block ends.

    Main thread only: Python sets handlers there alone (a Ray worker's trial runs on another thread,
    where Ray's own handling applies), so elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: arrived.append(signum)) for signum in HELD}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if arrived:
            os.kill(os.getpid(), arrived[0])  # now: the handler raises here, after what had to be written
