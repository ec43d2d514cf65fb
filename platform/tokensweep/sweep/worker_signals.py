"""SIGTERM in a trial's Ray worker: the process ends at once, without a traceback or a stack dump.

Ray's worker handles SIGTERM (what its raylet, a node being drained, or Tune shutting its reused actors
down send) by raising SystemExit in the worker's main thread, wherever that thread happens to run Python
next: inside a garbage-collection callback it becomes `Exception ignored in: <function WeakSet...>
SystemExit: 1` in the sweep's output (and the worker lives on until it is killed); while a trial trains,
the unwinding races the training thread and ends in a C++ stack dump. A process told to terminate has
nothing left to save here (checkpoints are written atomically, results reported; the driver records how
the trial ended), so it ends the way SIGTERM's default does, quietly.

The handler is installed by a mixin of the trial's Tune actor (`train_trial.__mixins__`, a Tune function
trainable's hook for classes to mix into the actor it builds): its `setup` runs in the worker's main
thread, the one thread that may set signal handlers.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def end_quietly(signum, frame) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken stream: nothing more to say
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def quiet_sigterm() -> bool:
    """Install `end_quietly` for SIGTERM (main thread only); True if it was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, end_quietly)
    return True


class QuietSigterm:
    """Mixed into the trial's Tune actor: sets the quiet SIGTERM handler as the actor is set up."""

    def setup(self, config, *args, **kwargs):
        quiet_sigterm()
        super().setup(config, *args, **kwargs)
