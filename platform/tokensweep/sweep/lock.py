"""One driver per sweep: a lock beside the sweep's Tune folder, taken before Ray starts.

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
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import sys
import threading
import time

from tokensweep.errors import SpecError

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
        if exclusive:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        else:  # a renewal: replaced whole, never half-written
            tmp = f"{self.path}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if not exclusive:
                os.replace(tmp, self.path)
        except OSError:  # a full disk: leave no half-written lock behind
            os.unlink(self.path if exclusive else tmp)
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
