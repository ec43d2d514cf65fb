"""A sweep is known by its id, not by its folder: the id file in its Tune folder, the parent run's tag, and the
driver's record of its Tune state all follow the folder when it moves (no Ray started; real sqlite MLflow)."""

import shutil

from tokensweep.sweep import tuner


def test_the_sweep_id_moves_with_its_folder_and_keys_the_state_record(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    before, after = tmp_path / "a" / "ray_results" / "s", tmp_path / "b" / "ray_results" / "s"
    sweep_id = tuner.write_sweep_id(str(before))
    tuner.StateRecord(str(before)).add({"tuner.pkl": b"version 1"})
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert tuner.read_sweep_id(str(after)) == sweep_id
    assert tuner.StateRecord(str(after)).known() == {"tuner.pkl": {tuner.sha256(b"version 1")}}  # the record the driver wrote


def test_a_folder_without_an_id_is_keyed_by_its_path(tmp_path):
    folder = tmp_path / "old-sweep"
    folder.mkdir()
    assert tuner.read_sweep_id(str(folder)) is None
    assert tuner.StateRecord(str(folder)).path != tuner.StateRecord(str(tmp_path / "elsewhere")).path
    (folder / tuner.SWEEP_ID_FILE).write_text("../../not an id")
    assert tuner.read_sweep_id(str(folder)) is None  # only a plain id is taken


def test_resume_finds_the_parent_by_its_id_wherever_the_tune_folder_is_now(tmp_path):
    from tokensweep.tracking import tags as T
    from tokensweep.tracking.tracker import SweepTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    kwargs = dict(command="c", tags={}, spec_text="", spec_name="s.toml", resolved={})
    parent = SweepTracker(uri, "s").start_parent(tune_path="/a/ray_results/s", sweep_id="abc", **kwargs)
    other = SweepTracker(uri, "s").start_parent(tune_path="/c/ray_results/s", sweep_id="xyz", **kwargs)  # another sweep of that name
    resumed = SweepTracker(uri, "s")
    assert resumed.start_parent(tune_path="/b/ray_results/s", sweep_id="abc", resume=True, **kwargs) == parent != other
    assert resumed.tags_of(parent)[T.TUNE_PATH] == "/b/ray_results/s"  # where it is now
    legacy = SweepTracker(uri, "s")  # a sweep started before ids: found by its folder
    assert legacy.start_parent(tune_path="/c/ray_results/s", resume=True, **kwargs) == other
