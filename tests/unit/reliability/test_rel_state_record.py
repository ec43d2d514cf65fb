"""The driver's record of Tune's state files, against a storage that filled up mid-upload (no Ray started).

Tune's upload writes each state file in place, so a full storage keeps the start of a version the driver
wrote: no digest matches it. A resumed sweep completes such a file from the driver's own copy of that version
instead of refusing the sweep; anything else it did not write is still refused.
"""

import pickle

import pytest

from tokensweep.errors import SpecError
from tokensweep.sweep import tuner


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    folder = tmp_path / "ray_results" / "s"
    folder.mkdir(parents=True)
    return folder


def _versions(n: int) -> list[bytes]:
    return [pickle.dumps({"searcher": i, "pad": list(range(200))}) for i in range(n)]


def _record(experiment, versions, name="searcher-state-x.pkl"):
    record = tuner.StateRecord(str(experiment))
    for data in versions:
        record.add({name: data})
    return record


@pytest.mark.parametrize("kept", [0, 5, 100])
def test_a_state_file_cut_short_is_completed_from_the_drivers_copy(experiment, kept, capsys):
    newest = _versions(3)[-1]
    _record(experiment, _versions(3))
    stored = experiment / "searcher-state-x.pkl"
    stored.write_bytes(newest[:kept])  # the upload that found the storage full
    cut_short = tuner.check_recorded(str(experiment))
    assert cut_short == {"searcher-state-x.pkl": newest}
    tuner.complete_uploads(str(experiment), cut_short)
    assert stored.read_bytes() == newest
    assert tuner.check_recorded(str(experiment)) == {}  # a recorded version now
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "searcher-state-x.pkl" in line and "cut short" in line


def test_the_version_before_the_newest_is_completed_too(experiment):
    versions = _versions(3)
    _record(experiment, versions)
    (experiment / "searcher-state-x.pkl").write_bytes(versions[-2][:50])  # its upload lagged the next save
    assert tuner.check_recorded(str(experiment)) == {"searcher-state-x.pkl": versions[-2]}


def test_only_the_newest_versions_are_kept_whole(experiment):
    versions = _versions(5)
    record = _record(experiment, versions)
    assert sorted(p.name for p in record.copies.iterdir()) == sorted(tuner.sha256(v) for v in versions[-tuner.KEEP_COPIES:])
    (experiment / "searcher-state-x.pkl").write_bytes(versions[0][:50])  # the start of a version too old to have a copy
    with pytest.raises(SpecError, match="not one this sweep's driver wrote"):
        tuner.check_recorded(str(experiment))


@pytest.mark.parametrize("change", ["appended", "same length", "another file's start"])
def test_what_is_not_the_start_of_its_own_version_is_refused(experiment, change):
    newest = _versions(2)[-1]
    _record(experiment, _versions(2))
    _record(experiment, [b"x" * 400], name="other.pkl")
    data = {
        "appended": newest + b"more",
        "same length": newest[:-1] + b"!",
        "another file's start": (b"x" * 400)[:10],  # a prefix of another file's version is not this file's
    }[change]
    (experiment / "searcher-state-x.pkl").write_bytes(data)
    (experiment / "other.pkl").write_bytes(b"x" * 400)
    with pytest.raises(SpecError, match="searcher-state-x.pkl"):
        tuner.check_recorded(str(experiment))


def test_forgetting_a_sweep_deletes_its_copies(experiment):
    record = _record(experiment, _versions(2))
    assert record.copies.is_dir()
    record.forget()
    assert not record.copies.exists() and not record.path.exists()
