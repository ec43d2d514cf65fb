"""The lock of a sweep (one driver per sweep), without Ray: on a local path (a holder whose pid is gone,
a pid now another process's, one on another host whose lease ran out, a file cut off mid-write, renewal)
and on S3 (moto's server: tests/e2e/reliability/test_rel_lock_s3.py). End to end: two drivers of one sweep started at the same moment
(test_rel_store_race.py) and a SIGKILLed driver's lock taken over by --resume
(tests/e2e/platform/test_sweep_ray.py::test_resume_after_driver_is_killed).
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from rel_helpers import wait_for
from tokensweep.sweep import guards as sweep_lock
from tokensweep.sweep.guards import SweepBusy, SweepLock

# --- the lock, without Ray ------------------------------------------------------------------------------


def _write_holder(path, **fields):
    holder = {"pid": 1, "host": socket.gethostname(), "started": time.time(), "renewed": time.time(),
              "command": "tokensweep run other.toml", "token": "t"} | fields  # fmt: skip
    path.write_text(json.dumps(holder))


def test_lock_names_its_holder_and_is_released(tmp_path):
    storage = tmp_path / "ray_results"
    lock = SweepLock(str(storage), "sw", "tokensweep run sw.toml")
    lock.check()  # nobody holds it; nothing written
    assert not storage.exists()
    with lock:
        data = json.loads((storage / ".sw.lock").read_text())
        assert data["pid"] == os.getpid() and data["host"] == socket.gethostname() and data["command"] == "tokensweep run sw.toml"
        other = SweepLock(str(storage), "sw")
        for attempt in (other.check, other.acquire):
            with pytest.raises(SweepBusy, match=rf"sweep 'sw' is already being run by pid {os.getpid()} on host "):
                attempt()
        SweepLock(str(storage), "another-sweep").check()  # one lock per sweep
    assert not (storage / ".sw.lock").exists()


def test_a_dead_drivers_lock_is_taken_over_with_a_note(tmp_path, capsys):
    storage = tmp_path / "ray_results"
    storage.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _write_holder(storage / ".sw.lock", pid=int(gone.stdout), started=time.time() - 60)  # that process has ended
    with SweepLock(str(storage), "sw"):
        assert json.loads((storage / ".sw.lock").read_text())["pid"] == os.getpid()
    assert "taking over the lock of sweep 'sw' from pid" in capsys.readouterr().err


def test_a_pid_that_now_belongs_to_a_later_process_is_not_the_holder(tmp_path):
    storage = tmp_path / "ray_results"
    storage.mkdir()
    _write_holder(storage / ".sw.lock", pid=os.getpid(), started=time.time() - 10**6)  # our pid, long before we started
    with SweepLock(str(storage), "sw"):
        pass


def test_another_hosts_lock_holds_until_its_lease_runs_out(tmp_path):
    storage = tmp_path / "ray_results"
    storage.mkdir()
    _write_holder(storage / ".sw.lock", pid=12345, host="elsewhere", renewed=time.time() - 10)  # renewed lately
    with pytest.raises(SweepBusy, match="pid 12345 on host elsewhere"):
        SweepLock(str(storage), "sw").acquire()
    _write_holder(storage / ".sw.lock", pid=12345, host="elsewhere", renewed=time.time() - sweep_lock.LEASE_S - 1)
    with SweepLock(str(storage), "sw"):
        pass


def test_a_lock_cut_off_mid_write_is_nobodys(tmp_path):
    storage = tmp_path / "ray_results"
    storage.mkdir()
    (storage / ".sw.lock").write_text('{"pid": 12')
    with SweepLock(str(storage), "sw"):
        pass


def test_the_holder_renews_its_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_lock, "RENEW_S", 0.2)
    storage = tmp_path / "ray_results"
    with SweepLock(str(storage), "sw"):
        first = json.loads((storage / ".sw.lock").read_text())["renewed"]
        wait_for(lambda: json.loads((storage / ".sw.lock").read_text())["renewed"] > first, 10, "a renewal")
    assert list(storage.iterdir()) == []  # no renewal's temp file left


