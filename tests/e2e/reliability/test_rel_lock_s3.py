"""The lock of a sweep (one driver per sweep) on S3 (moto's server), without Ray (on a local path:
tests/unit/reliability/test_rel_lock.py).
"""

import json
import os

import pytest

from tokensweep.sweep import guards
from tokensweep.sweep.guards import SweepBusy, SweepLock

def test_the_lock_on_s3_storage(s3_server, monkeypatch):
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(guards, "VERIFY_S", 0.5)
    bucket = s3_server.create_bucket("locks")
    storage = f"s3://{bucket}/ray_results"
    with SweepLock(storage, "sw", "tokensweep run sw.toml"):
        assert "ray_results/.sw.lock" in s3_server.keys(bucket)
        data = json.loads(s3_server.read(bucket, "ray_results/.sw.lock"))
        assert data["pid"] == os.getpid()
        with pytest.raises(SweepBusy, match=f"pid {os.getpid()} on host "):
            SweepLock(storage, "sw").acquire()
    assert "ray_results/.sw.lock" not in s3_server.keys(bucket)  # (pyarrow's folder marker may stay)
