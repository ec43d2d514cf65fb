"""Which checkpoint a resumed trial continues from when Tune's saved state names one that is gone (no Ray started).

Tune's saved state lags its storage: a driver killed after Tune registered newer checkpoints and deleted
the one its last snapshot named resumes with that deleted one as the trial's checkpoint. On a remote storage
(S3; here a pyarrow SubTreeFileSystem, which downloads as S3 does) the download failed with FileNotFoundError
and the trial failed on every retry, although newer checkpoints lay beside it.
"""

import shutil

import pyarrow.fs
import pytest
from ray import tune

from tokensweep.sweep.worker import choose
from trials.errors import ConfigError
from trials.train.checkpoint import save_checkpoint


@pytest.fixture
def trial_folder(tmp_path):
    folder = tmp_path / "storage" / "trial_0"
    for index in range(3):
        save_checkpoint(folder / f"checkpoint_{index:06d}", {"epoch": index + 1})
    return folder


def _remote(tmp_path, name: str) -> tune.Checkpoint:
    fs = pyarrow.fs.SubTreeFileSystem(str(tmp_path / "storage"), pyarrow.fs.LocalFileSystem())
    return tune.Checkpoint(f"trial_0/{name}", filesystem=fs)


def test_a_deleted_checkpoint_gives_way_to_the_newest_beside_it(tmp_path, trial_folder, capsys):
    shutil.rmtree(trial_folder / "checkpoint_000000")  # Tune deleted it after the third registered
    chosen, note = choose(_remote(tmp_path, "checkpoint_000000"), "t")
    assert chosen.path.endswith("checkpoint_000002")
    assert "checkpoint_000000 is gone from the storage" in note and "resuming from checkpoint_000002" in note
    assert note in capsys.readouterr().err


def test_a_present_checkpoint_is_used_as_registered(tmp_path, trial_folder):
    chosen, note = choose(_remote(tmp_path, "checkpoint_000001"), "t")
    assert chosen.path.endswith("checkpoint_000001") and note is None


def test_nothing_left_to_load_fails_the_trial_in_one_line(tmp_path, trial_folder):
    for index in range(3):
        shutil.rmtree(trial_folder / f"checkpoint_{index:06d}")
    with pytest.raises(ConfigError, match="checkpoint_000000 is gone from the storage .and no other checkpoint"):
        choose(_remote(tmp_path, "checkpoint_000000"), "t")
