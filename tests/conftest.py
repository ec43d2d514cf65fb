"""Session-wide: SIGINT as a terminal gives it; torch's threads shared out among the test workers.

A test run started in the background by a non-interactive shell (`scripts/test &` in a script, nohup)
ignores SIGINT, and every process it starts inherits that (an ignored signal survives exec): the tests
that press Ctrl-C on a `tokensweep trial` would wait for a process that rightly ignores it. A handler
does not survive exec, so with one here the tests' processes start with SIGINT's default again."""

import os
import signal

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Test workers side by side (pytest-xdist: scripts/test runs 2 on 2 cores) each get their share of the cores
# for torch's OpenMP threads, and so do the processes they start (the variable is inherited). At torch's
# default (every core) in each worker, a thread whose partner the other worker keeps off its core spins at the
# barrier: beside one busy core, the model and trial tests took 3x the CPU and 2.7x the time (67 vs 23 CPU-s).
# The sweeps' trials set their threads themselves (one per CPU they were given).
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _workers)))
