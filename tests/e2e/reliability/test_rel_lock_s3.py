"""The lock of a sweep (one driver per sweep), without Ray: on a local path (a holder whose pid is gone,
a pid now another process's, one on another host whose lease ran out, a file cut off mid-write, renewal)
and on S3 (moto's server). End to end: two drivers of one sweep started at the same moment
(test_rel_store_race.py) and a SIGKILLed driver's lock taken over by --resume
(tests/e2e/platform/test_sweep_ray.py::test_resume_after_driver_is_killed).
"""

import json
import os

import pytest

from tokensweep.sweep import lock as sweep_lock
from tokensweep.sweep.lock import SweepBusy, SweepLock

# --- the lock, without Ray ------------------------------------------------------------------------------


def test_the_lock_on_s3_storage(s3_server, monkeypatch):
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sweep_lock, "VERIFY_S", 0.5)
    bucket = s3_server.create_bucket("locks")
    storage = f"s3://{bucket}/ray_results"
    with SweepLock(storage, "sw", "tokensweep run sw.toml"):
        assert "ray_results/.sw.lock" in s3_server.keys(bucket)
        data = json.loads(s3_server.read(bucket, "ray_results/.sw.lock"))
        assert data["pid"] == os.getpid()
        with pytest.raises(SweepBusy, match=f"pid {os.getpid()} on host "):
            SweepLock(storage, "sw").acquire()
    assert "ray_results/.sw.lock" not in s3_server.keys(bucket)  # (pyarrow's folder marker may stay)
