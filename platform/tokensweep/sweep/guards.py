"""What keeps a sweep safe to start and stop: one driver per sweep (the lock), signals to the driver, starting or joining Ray.

One driver per sweep: a lock beside the sweep's Tune folder, taken before Ray starts.

Tune writes its state only once it runs, so two `tokensweep run` of one sweep started seconds apart both
saw no sweep there and ran every trial into one folder. The lock is a small JSON file (or object)
`<storage>/.<name>.lock` naming its holder (pid, host, start time, command), next to the sweep's folder
(so `--fresh`, which deletes the folder, keeps it). A second driver gets one line naming the first.

Taking it: on a local (or NFS) path, an exclusive create (O_EXCL) - atomic. On s3:// (or another
pyarrow filesystem) there is no exclusive create: the driver writes its lock, waits a moment and reads
it back; of two drivers writing at once the later write wins and the other backs off (S3 reads are
strongly consistent). It lives where Tune's own state lives, so every driver of the sweep sees it
whatever machine it runs on - which a lock in one machine's working directory, or in MLflow (no atomic
writes at all), would not give.

A crashed driver cannot release its lock, so a lock is stale - taken over, with a note - when its
holder is gone: on the same host, its pid no longer runs (or is another process now); from another
host, which cannot check the pid, when it was not renewed for LEASE_S (the holder renews it every
RENEW_S). A crashed driver on another machine so blocks `--resume` for at most LEASE_S.

Ctrl-C (SIGINT), SIGTERM (a scheduler's preemption) and SIGHUP (its terminal closed, its SSH session dropped)
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

Starting or joining Ray for a sweep, and what the cluster offers its trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time

import ray

from tokensweep.errors import SpecError
from tokensweep.spec import SweepSpec
from tokensweep.sweep import RunOptions
from vocab.atomic import atomic_path


LEASE_S = 120.0
RENEW_S = 30.0
VERIFY_S = 2.0  # s3: how long a written lock must stay ours before it counts


class SweepBusy(SpecError):
    """Another driver runs this sweep."""


@dataclasses.dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: float
    renewed: float
    command: str
    token: str

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        command = f" ({self.command})" if self.command else ""
        return f"pid {self.pid} on host {self.host}, running since {since}{command}"

    def gone(self, now: float) -> bool:
        """Is the holder surely not running any more?"""
        if self.host == socket.gethostname():
            return not _pid_runs_since(self.pid, self.started)
        return now - self.renewed > LEASE_S


def _pid_runs_since(pid: int, started: float) -> bool:
    import psutil

    try:
        return psutil.Process(pid).create_time() <= started + 1.0  # a later process with its pid is not it
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


class SweepLock:
    """`check()` (read only), then `with lock:` holds it, renewing, until the sweep ends."""

    def __init__(self, storage: str, name: str, command: str = ""):
        self.storage = storage.rstrip("/")
        self.name = name
        self.path = f"{self.storage}/.{name}.lock"
        self.command = " ".join(command.split())[:300]
        self.remote = "://" in self.storage
        self._mine: Holder | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # --- reading and writing the lock file or object ---
    def _fs(self):
        import pyarrow.fs

        return pyarrow.fs.FileSystem.from_uri(self.path)

    def _read(self) -> Holder | None:
        try:
            if self.remote:
                fs, path = self._fs()
                with fs.open_input_stream(path) as f:
                    text = f.read().decode()
            else:
                with open(self.path) as f:
                    text = f.read()
        except FileNotFoundError:
            return None
        except OSError as err:
            if self.remote and "not found" in str(err).lower():
                return None
            raise SpecError(f"cannot read the sweep's lock {self.path}: {' '.join(str(err).split())[:300]}") from None
        try:
            return Holder(**json.loads(text))
        except (ValueError, TypeError):  # cut off mid-write by a crash: nobody's
            return Holder(0, "", 0.0, 0.0, "", "")

    def _write(self, holder: Holder, exclusive: bool = False) -> None:
        data = json.dumps(dataclasses.asdict(holder)).encode()
        if self.remote:
            fs, path = self._fs()
            with fs.open_output_stream(path) as f:
                f.write(data)
            return
        os.makedirs(self.storage, exist_ok=True)
        if not exclusive:  # a renewal: replaced whole, never half-written
            with atomic_path(self.path, durable=True) as tmp:
                tmp.write_bytes(data)
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError:  # a full disk: leave no half-written lock behind
            os.unlink(self.path)
            raise

    def _delete(self) -> None:
        try:
            if self.remote:
                fs, path = self._fs()
                fs.delete_file(path)
            else:
                os.unlink(self.path)
        except (FileNotFoundError, OSError):
            pass

    # --- the protocol ---
    def _busy(self, holder: Holder) -> SweepBusy:
        return SweepBusy(
            f"sweep {self.name!r} is already being run by {holder.describe()}; wait for it to end or stop it "
            f"(its lock: {self.path})"
        )

    def check(self) -> None:
        """SweepBusy if a live driver holds the lock. Writes nothing."""
        holder = self._read()
        if holder is not None and not holder.gone(time.time()):
            raise self._busy(holder)

    def acquire(self) -> None:
        now = time.time()
        mine = Holder(os.getpid(), socket.gethostname(), now, now, self.command, secrets.token_hex(8))
        holder = self._read()
        if holder is not None:
            if not holder.gone(now):
                raise self._busy(holder)
            if holder.pid:
                print(f"tokensweep run: note: taking over the lock of sweep {self.name!r} from {holder.describe()}, "
                      "which is not running any more", file=sys.stderr, flush=True)  # fmt: skip
            self._delete()
        try:
            self._take(mine)
        except OSError as err:  # e.g. a bucket that does not exist, a storage that cannot be written
            raise SpecError(f"cannot write the sweep's lock {self.path}: {' '.join(str(err).split())[:300]}") from None
        self._mine = mine
        self._renewer = threading.Thread(target=self._renew, name="sweep-lock", daemon=True)
        self._renewer.start()

    def _take(self, mine: Holder) -> None:
        if self.remote:
            self._write(mine)
            time.sleep(VERIFY_S)
            holder = self._read()
            if holder is None or holder.token != mine.token:
                raise self._busy(holder or mine)
        else:
            try:
                self._write(mine, exclusive=True)
            except FileExistsError:  # another driver took it between our read and our create
                raise self._busy(self._read() or mine) from None

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                self._write(dataclasses.replace(self._mine, renewed=time.time()))
            except OSError:
                pass  # a storage hiccup; the next renewal tries again, the lease is 4 renewals long

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        holder = self._read() if self._mine else None
        if holder is not None and holder.token == self._mine.token:
            self._delete()
        self._mine = None

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


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






def probe(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at a host:port address (ray.init retries long)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto" and other forms: ray.init explains itself quickly
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise SpecError(f"--address {address}: nothing answers there ({err.strerror or err}); is the Ray head running?") from None


def init_ray(options: RunOptions) -> None:
    address = options.ray_address()
    if options.starts_local_ray():
        # RAY_AUTH_MODE was chosen before Ray was imported: see tokensweep.commands.run.choose_ray_auth
        ray.init(address="local", num_cpus=options.num_cpus, num_gpus=options.num_gpus, include_dashboard=False,
                 logging_level=logging.WARNING)  # fmt: skip
        return
    join_cluster(address)


def join_cluster(address: str) -> None:
    """ray.init on a running cluster; nothing there is one line, in seconds."""
    probe(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise SpecError(f"--address {address}: cannot connect to a Ray cluster ({err})".replace("\n", " ")) from None


def cluster_resources(address: str) -> dict:
    """The resources of the running cluster at `address` ({"CPU": 16.0, "GPU": 8.0, ...}): joined, read, left."""
    join_cluster(address)
    try:
        return ray.cluster_resources()
    finally:
        ray.shutdown()


LEFTOVER_GRACE_S = 5.0  # for a local Ray's processes to end after ray.shutdown, before they are killed


def shutdown(options: RunOptions) -> None:
    """ray.shutdown(); a local Ray's processes that outlive it are then ended (end_processes)."""
    processes = own_processes() if options.starts_local_ray() else []
    ray.shutdown()
    end_processes(processes, LEFTOVER_GRACE_S)


def own_processes() -> list:
    """This process's descendants: a local Ray's (listed before Ray ends: its agents are its raylet's children)."""
    import psutil

    return psutil.Process().children(recursive=True)


def end_processes(processes: list, grace_s: float = 0.0) -> None:
    """Kill those of `processes` still alive after `grace_s`. A local Ray's agents (DashboardAgent,
    RuntimeEnvAgent) outlive a driver that ended without ray.shutdown, on their loopback ports, ignoring SIGTERM."""
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:  # ended meanwhile
            pass
    psutil.wait_procs(alive, timeout=5)






def largest_node_cpus() -> float:
    return max((n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)


def note_unschedulable(spec: SweepSpec, options: RunOptions) -> None:
    """After Ray starts: say what trials that fit no node now wait for (a trial's CPUs are on one node)."""
    largest = largest_node_cpus()
    if spec.cpus <= largest:
        return
    if options.starts_local_ray():  # Ray saw fewer CPUs than os.cpu_count() (a container's CPU limit)
        raise SpecError(f"resources.cpus = {spec.cpus:g} per trial, but the local Ray has {largest:g} CPU(s): no trial could ever start")
    print(
        f"tokensweep run: note: each trial needs resources.cpus = {spec.cpus:g} on one node, and the largest node of "
        f"the cluster has {largest:g} CPU(s) now; the trials wait until a node that large joins (an autoscaler "
        "adds one if the cluster has such a node type)",
        file=sys.stderr,
        flush=True,
    )


def resolve_gpus(spec: SweepSpec, options: RunOptions) -> SweepSpec:
    """gpus = "auto": one per trial when the cluster has GPUs, else none; a GPU nobody has: refused locally,
    and so are more GPUs per trial than the local Ray has (a cluster's trials wait for a node that large)."""
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if spec.gpus is None:
        return spec.with_gpus(1.0 if cluster_gpus > 0 else 0.0)
    largest = max((n.get("Resources", {}).get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
    if 0 < largest < spec.gpus:
        if options.starts_local_ray():
            raise SpecError(f"resources.gpus = {spec.gpus:g} per trial, but the local Ray has {largest:g} GPU(s): "
                            "no trial could ever start; lower resources.gpus")  # fmt: skip
        print(
            f"tokensweep run: note: each trial needs resources.gpus = {spec.gpus:g} on one node, and the largest node "
            f"of the cluster has {largest:g} GPU(s) now; the trials wait until a node that large joins",
            file=sys.stderr,
            flush=True,
        )
    if spec.gpus > 0 and cluster_gpus == 0:
        if options.starts_local_ray():
            raise SpecError(f"resources.gpus = {spec.gpus:g}, but this machine has no GPU visible to Ray (use gpus = 0)")
        print(
            f"tokensweep run: note: resources.gpus = {spec.gpus:g} but the cluster has no GPU now; "
            "trials wait until an autoscaler adds GPU nodes",
            file=sys.stderr,
        )
    return spec


def warn_if_storage_is_not_shared(storage: str) -> None:
    if "://" not in storage and len([n for n in ray.nodes() if n.get("Alive")]) > 1:
        print(
            f"tokensweep run: note: --storage {storage} is a local path; with trials on several "
            "machines it must be a shared filesystem (NFS) or s3://...",
            file=sys.stderr,
        )
