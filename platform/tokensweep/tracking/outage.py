"""PendingWrites: tracking writes kept in order while the store is unreachable, replayed when it answers."""

from __future__ import annotations

import collections
import logging
import sys
import time

from tokensweep.tracking.store import is_unavailable, mlflow_error, why_unreachable

log = logging.getLogger(__name__)

# MLflow's sqlite store logs each failed request with its traceback before raising it
MLFLOW_STORE_LOGGER = "mlflow.store.db.utils"
RETRY_EVERY_S = 3.0  # how often waiting writes are tried again


class _ReportedByPendingWrites(logging.Filter):
    """Drops MLflow's record of a failed request: the error is raised too, and PendingWrites says what became
    of the write in its own words - a note once per outage, one line per other failure, one line for a store
    deleted or replaced - not a traceback per write."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def quiet_store_errors() -> None:
    logger = logging.getLogger(MLFLOW_STORE_LOGGER)
    if not any(isinstance(f, _ReportedByPendingWrites) for f in logger.filters):
        logger.addFilter(_ReportedByPendingWrites())


class PendingWrites:
    """Tracking writes, in order, that wait while the store is unreachable; replayed when it answers.

    `submit(what, fn, *args)` calls fn at once when nothing is waiting. If the store cannot be reached
    (`is_unavailable`), the write waits in a FIFO, and so does every later one - never reordered, so a
    run is not marked FINISHED before its last metrics arrive. Later submits (and `poke`, called on
    every Tune step) replay the queue, at most once per `retry_every_s`, so a dead server costs one
    quick failed request every few seconds rather than blocking. `wait` gives the queue time to empty
    (once per outage: a store that stayed unreachable for a whole wait gets one more try, not another
    wait); `drain` waits, then counts what it cannot deliver in `lost` and reports it (`not_recorded`),
    never dropping it silently. Any other error (a bug, a refused value) is counted in `failed`, logged
    in one line, and skipped - unless `check_store` (called then) says why the store is not the sweep's any
    more (deleted, replaced): then `lose_store` - that write and every later one is kept back and counted by
    `drain`, none is sent to a store that is not the sweep's.
    """

    def __init__(self, label: str = "MLflow", retry_every_s: float = RETRY_EVERY_S, clock=time.monotonic, sleep=time.sleep,
                 check_store=None):  # fmt: skip
        self.label = label
        self.check_store = check_store  # () -> why the store is not the sweep's, or None
        self.gone: str | None = None  # lose_store's reason
        self.retry_every_s = retry_every_s
        self.clock, self.sleep = clock, sleep
        self.queue: collections.deque = collections.deque()
        self.failed = 0  # writes that raised something other than "unreachable"
        self.lost = 0  # writes still waiting when drain gave up
        self.delivered_late = 0  # writes that waited, then arrived
        self.outages = 0
        self._next_try = 0.0
        self._waited_out = False  # a wait of this outage ended with writes still waiting
        quiet_store_errors()

    @property
    def waiting(self) -> int:
        return len(self.queue)

    def lose_store(self, why: str) -> None:
        """The store is not the sweep's any more: say so once; from now on writes are kept back and counted."""
        if self.gone is None:
            self.gone = why
            print(
                f"tokensweep run: error: {self.label} {why}; its writes are no longer sent, and Tune keeps every result: "
                "`--resume` against the restored store (or a new one) records every trial",
                file=sys.stderr,
                flush=True,
            )

    def submit(self, what: str, fn, *args) -> None:
        self.queue.append((what, fn, args))
        if self.gone:
            return
        if len(self.queue) == 1:
            self._run_queue()
        else:
            self.poke()

    def poke(self) -> None:
        """Replay waiting writes if the last try was long enough ago."""
        if self.queue and self.clock() >= self._next_try:
            self._run_queue()

    def _run_queue(self) -> bool:
        """Deliver waiting writes in order; stop at the first that finds the store unreachable."""
        was_waiting = self._next_try > 0  # an outage began: what is delivered now arrives late
        while self.queue and not self.gone:
            what, fn, args = self.queue[0]
            try:
                fn(*args)
            except Exception as err:
                if is_unavailable(err):
                    if self._next_try == 0:
                        self.outages += 1
                        print(
                            f"tokensweep run: note: {self.label} is unreachable ({why_unreachable(err)}); keeping its "
                            f"writes in order and retrying every {self.retry_every_s:g}s",
                            file=sys.stderr,
                            flush=True,
                        )
                    self._next_try = self.clock() + self.retry_every_s
                    return False
                why = self.check_store() if self.check_store else None
                if why:
                    self.lose_store(why)
                    return False
                self.failed += 1
                log.error("MLflow logging failed (%s); the sweep goes on: %s", what, mlflow_error(err))
                log.debug("MLflow logging failure", exc_info=True)
            else:
                if was_waiting:
                    self.delivered_late += 1
            self.queue.popleft()
        if self.gone:
            return False
        if self._next_try > 0:
            print(f"tokensweep run: note: {self.label} answers again; every waiting write delivered", file=sys.stderr, flush=True)
            self._next_try = 0.0
        self._waited_out = False
        return True

    def wait(self, timeout_s: float) -> bool:
        """Replay until the queue is empty or `timeout_s` passed (one try if an earlier wait of this outage
        ran out); True if nothing is left waiting."""
        if not self.queue:
            return True
        if self.gone:  # nothing to wait for
            return False
        if self._waited_out:
            return self._run_queue()
        deadline = self.clock() + timeout_s
        print(
            f"tokensweep run: note: waiting up to {timeout_s:g}s for {self.label} to deliver "
            f"{len(self.queue)} write(s)",
            file=sys.stderr,
            flush=True,
        )
        while self.queue:
            self.poke()
            if not self.queue or self.clock() >= deadline:
                break
            self.sleep(min(self.retry_every_s, max(0.0, deadline - self.clock()), 1.0))
        self._waited_out = bool(self.queue)
        return not self.queue

    def drain(self, timeout_s: float) -> int:
        """`wait`, then count in `lost` and report what is left (its number, returned), and forget it."""
        if self.wait(timeout_s):
            return 0
        left = len(self.queue)
        self.lost += left
        whats = collections.Counter(what for what, _, _ in self.queue)
        print(f"tokensweep run: error: {not_recorded(self.label, whats)}", file=sys.stderr, flush=True)
        self.queue.clear()
        return left


def not_recorded(label: str, whats: collections.Counter) -> str:
    """The one wording of writes that never reached the store, whichever phase of a sweep gave up on them."""
    summary = ", ".join(f"{n} x {what}" for what, n in whats.items())
    return f"{label} stayed unreachable; {whats.total()} write(s) were not recorded ({summary}): those runs are incomplete"
