"""Ctrl-C (SIGINT), SIGTERM (a scheduler's preemption) and SIGHUP (its terminal closed, its SSH session dropped)
to `tokensweep run`: the sweep stops in order. SIGHUP is a SIGTERM here: a sweep is a batch job whose record
must be closed, not an interactive program that ends with its terminal.

What the driver does with them (`StopOnSignal`, active from before Ray starts to the end of the sweep):
- while Tune runs: it asks Tune to stop the way Tune's own Ctrl-C handling does (Tune's SIGUSR1 handler):
  Tune saves its state with every unfinished trial as it was - what `--resume` continues from - and
  stops the trials' actors; then the driver closes the trials' MLflow runs (KILLED, with the epoch they
  reached) and the parent run, and `tokensweep run` says in one line what finished and what was
  interrupted, exit code 128 + the signal (130, 143, 129);
- before the sweep's parent run exists (Ray starting): SweepInterrupted is raised at once - nothing
  was started that needs closing;
- after the parent run exists, before Tune runs, or while runs are being closed: it is remembered
  and acted on at the next safe point (Tune is not started; closing runs is not cut short).
A second signal (Ctrl-C pressed again) changes nothing: the stop under way goes on (one line says so), since
cutting Tune's shutdown short would leave its state unsaved and, raised inside Ray's C code, turn into a
SystemError. If the sweep has not reached its end STOP_DEADLINE_S after the signal (a local
Ray whose own processes got the SIGTERM too - systemd and batch schedulers signal every process - leaves
Tune waiting for a GCS that is gone), `on_deadline` closes the MLflow runs from another thread, says so,
and the process exits with the same code: a signal never leaves a run RUNNING or the user waiting. Ray's own words about it (Tune's Ctrl-C warning, "Trials did not complete",
its `Tuner.restore(...)` hint, which is not how a tokensweep sweep resumes) are dropped. Ray turns
SIGTERM into SystemExit in a driver (set by ray.init), so the handlers are installed again after it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_DEADLINE_S = 20.0  # from the signal to the sweep's end, before the runs are closed without Ray
CLOSE_GRACE_S = 10.0  # more time for closing runs that has begun when the deadline passes
# Tune's log lines about a stop we asked for, and its hint to resume with Tuner.restore
RAY_STOP_WORDS = ("Stop signal received", "Trials did not complete", "Tuner.restore(", "Experiment has been interrupted")


class SweepInterrupted(BaseException):
    """The sweep was stopped by a signal (a BaseException, like KeyboardInterrupt: not an error)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def stopped_by(signum: int) -> str:
    """The parent run's tokensweep.stopped: 'interrupted (SIGINT)', 'terminated (SIGTERM)', 'terminated (SIGHUP)'."""
    return f"{'interrupted' if signum == signal.SIGINT else 'terminated'} ({signal_name(signum)})"


def resume_command(command: str) -> str:
    """The sweep's command line, as --resume."""
    return " ".join(w for w in command.split() if w not in ("--fresh", "--resume")) + " --resume"


def close_without_ray(tracker, signum: int, command: str) -> None:
    """`on_deadline` of a sweep whose Ray did not stop in time: close the runs from here and say so."""
    from tokensweep.tracking import tags as T

    killed = tracker.close_running_children("KILLED")
    tracker.end_parent("KILLED", {T.STOPPED: stopped_by(signum) + "; Ray did not stop in time"})
    print(
        f"tokensweep run: {stopped_by(signum)}: Ray did not stop within {STOP_DEADLINE_S:.0f} s (did its own processes "
        f"get the signal too?); {len(killed)} interrupted trial run(s) and the sweep's parent run are closed as KILLED "
        f"in MLflow; `{resume_command(command)}` continues the sweep",
        file=sys.stderr,
        flush=True,
    )


def interrupted_within(err: BaseException) -> bool:
    """Whether `err` came of SweepInterrupted raised inside other code (Ray's C code turns an exception raised
    by a signal handler into SystemError, with it as the cause)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SweepInterrupted):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class _DropRayStopWords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(words in message for words in RAY_STOP_WORDS)


class StopOnSignal:
    def __init__(self):
        self.signum: int | None = None
        self._phase = "setup"  # setup -> parent (its MLflow run exists) -> tune -> stage (the bench) -> closing
        self._previous: dict = {}
        self._filter = _DropRayStopWords()
        self.on_deadline = None  # closes the sweep's MLflow runs without Ray (set once the parent run exists)
        self.before_exit = []  # what must still happen if the process ends from the watchdog (the sweep's lock)
        self._done = threading.Event()
        self._said_again = False  # a second signal was answered

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum else 0

    def __enter__(self) -> StopOnSignal:
        # Tune would put its own SIGINT handler in place of ours; its SIGUSR1 handler does the same stop
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self.install()
        logging.getLogger("ray.tune.tune").addFilter(self._filter)
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        logging.getLogger("ray.tune.tune").removeFilter(self._filter)

    def install(self) -> None:
        """(Again:) ray.init replaces the SIGTERM handler with Ray's."""
        for signum in SIGNALS:
            previous = signal.signal(signum, self._handle)
            self._previous.setdefault(signum, previous)

    def parent_started(self) -> None:
        self._phase = "parent"

    @contextlib.contextmanager
    def tune_running(self):
        """Around Tuner.fit: a signal asks Tune to stop; nothing is started if one came before."""
        if self.stopped:
            raise SweepInterrupted(self.signum)
        self._phase = "tune"
        try:
            yield
        finally:
            self._phase = "closing"

    @contextlib.contextmanager
    def stops_at_once(self):
        """Around work a signal may cut short (the bench stage): SweepInterrupted there, at once."""
        self.check()
        self._phase = "stage"
        try:
            yield
        finally:
            self._phase = "closing"

    def check(self) -> None:
        """At a safe point: SweepInterrupted if a signal came meanwhile."""
        if self.stopped:
            raise SweepInterrupted(self.signum)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # the stop is under way: the same outcome, sooner would lose Tune's state
            if not self._said_again:
                self._said_again = True
                self._say(f"tokensweep run: {signal_name(signum)} again: already stopping, saving the sweep's state "
                          f"for --resume (at most {STOP_DEADLINE_S + CLOSE_GRACE_S:.0f} s)")  # fmt: skip
            return
        self.signum = signum
        if self._phase == "setup":
            raise SweepInterrupted(signum)
        threading.Thread(target=self._watchdog, name="stop-deadline", daemon=True).start()
        if self._phase == "stage":
            raise SweepInterrupted(signum)
        if self._phase != "tune":
            return  # acted on at the next check
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if callable(tune_stop):  # Tune's loop is running: it stops after its current step
            tune_stop(signal.SIGUSR1, frame)
            return
        raise SweepInterrupted(signum)  # Tune not started yet: stop now

    @staticmethod
    def _say(line: str) -> None:
        """From a signal handler: one write, not through sys.stderr (the main thread may be inside a print)."""
        try:
            os.write(2, f"{line}\n".encode())
        except OSError:  # the terminal is gone (SIGHUP): nobody to tell
            pass

    def _watchdog(self) -> None:
        if self._done.wait(STOP_DEADLINE_S):
            return
        if self._phase != "closing" and self.on_deadline is not None:
            try:
                self.on_deadline()
            except Exception as err:  # MLflow unreachable too: say so, still end
                print(f"tokensweep run: error: could not close the sweep's MLflow runs: {err}", file=sys.stderr, flush=True)
        elif self._done.wait(CLOSE_GRACE_S):  # the driver is closing the runs itself: let it finish
            return
        for cleanup in self.before_exit:
            try:
                cleanup()
            except Exception:
                pass
        os._exit(self.exit_code)
