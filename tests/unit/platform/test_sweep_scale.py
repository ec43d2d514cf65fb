"""Sweeps at scale: what must not grow with the number of trials, and a 2,000-trial grid that starts and stops.

Nothing here is timed (the figures are `python -m benchmarks scale`'s): the unit tests check that the
per-trial work stays constant (no MLflow search per trial, no re-reading of Tune's results, a snapshot
period that adapts); tests/e2e/benchmarks/test_scale_benchmark_quick.py that a big grid starts and ends
cleanly on Ctrl-C.
"""

import os
import types

import pytest

from sweep_helpers import grid_spec
from sweep_helpers import FakeTrial, sweep_runs

from tokensweep.payload import Platform


# --- the tracker asks MLflow only where its own record may be incomplete ---------------------------------


class CountingClient:
    """The tracker's client, counting its searches."""

    def __init__(self, client):
        self.client, self.searches, self.fail_next_create = client, 0, False

    def __getattr__(self, name):
        return getattr(self.client, name)

    def search_runs(self, *args, **kwargs):
        self.searches += 1
        return self.client.search_runs(*args, **kwargs)

    def create_run(self, *args, **kwargs):
        run = self.client.create_run(*args, **kwargs)
        if self.fail_next_create:  # the request reached the store, its answer did not come back
            self.fail_next_create = False
            raise ConnectionError("Connection aborted")
        return run


def _tracker(uri: str, resume: bool = False):
    from tokensweep.tracking.tracker import SweepTracker

    tracker = SweepTracker(uri, "big")
    tracker.start_parent(tune_path="/r/big", command="c", tags={}, spec_text="", spec_name="s.toml", resolved={},
                         resume=resume)  # fmt: skip
    tracker.client = CountingClient(tracker.client)
    return tracker


def test_a_new_parent_creates_its_trial_runs_without_searching_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = _tracker(uri)
    assert tracker.new_parent
    runs = [tracker.start_child(f"t_{i:05d}", f"trial-{i}", {"seed": i}, {}) for i in range(5)]
    assert tracker.child_id("t_00003") == runs[3]
    assert tracker.child_id("t_99999") is None  # never created: no run, and nobody asked MLflow
    assert tracker.client.searches == 0

    # a creation whose answer was lost: the retry finds the run it made instead of making a second
    tracker.client.fail_next_create = True
    with pytest.raises(ConnectionError):
        tracker.start_child("t_00005", "trial-5", {}, {})
    again = tracker.start_child("t_00005", "trial-5", {}, {})
    assert tracker.client.searches == 1
    _, children = sweep_runs(tmp_path / "mlflow.db", "big")
    assert sorted(c.info.run_id for c in children) == sorted([*runs, again])

    # a resumed parent: runs this tracker did not make exist, so it looks for each trial's first
    resumed = _tracker(uri, resume=True)
    assert not resumed.new_parent
    assert resumed.start_child("t_00002", "trial-2", {}, {}) == runs[2]
    assert resumed.client.searches == 1


def test_closing_running_children_reads_every_page(tmp_path, monkeypatch):
    from tokensweep.tracking import store

    monkeypatch.setattr(store, "PAGE", 2)  # 7 runs in 4 pages (10,000 runs per page would be 10,000 runs)
    tracker = _tracker(f"sqlite:///{tmp_path}/mlflow.db")
    ids = [tracker.start_child(f"t_{i:05d}", f"trial-{i}", {}, {}) for i in range(8)]
    tracker.end_child(ids[0], "FINISHED")
    assert len(tracker.close_running_children("KILLED")) == 7
    _, children = sweep_runs(tmp_path / "mlflow.db", "big")
    assert sorted(c.info.status for c in children) == ["FINISHED"] + ["KILLED"] * 7


# --- the end-of-sweep summary from the callback's record ------------------------------------------------


BIG = Platform("sqlite://", "big", False, 10.0, ())


def seed_trial(index: int, status: str, last_result=None) -> FakeTrial:
    return FakeTrial(f"t_{index:05d}", f"seed={index}", {"epochs": 1}, BIG, index, status, last_result)


def no_params(payload):
    return {}, {}


def test_the_summary_says_how_each_trial_ended_without_reading_storage(tmp_path):
    from tokensweep.sweep.tuner import summarise
    from tokensweep.tracking.callback import MlflowTrialLogger

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = _tracker(uri)
    logger = MlflowTrialLogger(uri, "big", tracker.experiment_id, tracker.parent_run_id, no_params,
                               new_parent=True)  # fmt: skip
    done_before, failed_before, pending_before = seed_trial(0, "TERMINATED", {"top1": 5.0}), seed_trial(1, "ERROR"), seed_trial(2, "PENDING")
    logger.on_step_begin(0, [done_before, failed_before, pending_before])  # restored from an earlier session
    finished, failed, interrupted, never_started = (seed_trial(i, "PENDING") for i in (3, 4, 5, 6))
    trials = [done_before, failed_before, pending_before, finished, failed, interrupted, never_started]
    for trial in (finished, failed, interrupted):
        logger.on_trial_start(1, trials, trial)
    finished.last_result = {"top1": 40.0, "epoch": 1}
    logger.on_trial_complete(2, trials, finished)
    logger.on_trial_error(2, trials, failed)
    assert logger.outcomes() is None  # the experiment has not ended
    for trial in (pending_before, interrupted, never_started):
        trial.status = "TERMINATED"  # what Tune's cleanup sets on the trials it stops when interrupted
    logger.on_experiment_end(trials=list(reversed(trials)))

    outcomes = summarise("/no/such/tune/state", logger.outcomes())
    assert [(o.name, o.status) for o in outcomes] == [
        ("seed=0", "TERMINATED"), ("seed=1", "ERROR"), ("seed=2", "PENDING"), ("seed=3", "TERMINATED"),
        ("seed=4", "ERROR"), ("seed=5", "RUNNING"), ("seed=6", "PENDING"),
    ]  # fmt: skip
    assert outcomes[0].metrics == {"top1": 5.0} and outcomes[3].metrics["top1"] == 40.0
    # a pickled copy (Tune's saved experiment, a Ray Client sweep) keeps no trials and asks MLflow again
    import pickle

    copy = pickle.loads(pickle.dumps(logger))
    assert copy.outcomes() is None and copy.new_parent is False


def test_the_snapshot_period_adapts_for_big_sweeps(monkeypatch):
    from tokensweep.sweep.driver import SNAPSHOT_2S_TRIALS, configure_tune

    for trials, period in ((4, "2"), (SNAPSHOT_2S_TRIALS, "2"), (SNAPSHOT_2S_TRIALS + 1, "auto"), (100_000, "auto")):
        monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
        configure_tune(types.SimpleNamespace(num_trials=trials, search="grid"))
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == period, trials
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "7")  # the user's choice wins
    configure_tune(types.SimpleNamespace(num_trials=5_000, search="grid"))
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "7"


# --- the scheduler picks the next trial without walking every finished one ---------------------------


class StatusTrial:
    """A trial whose status reads are counted."""

    reads = 0

    def __init__(self, status: str):
        self._status = status

    @property
    def status(self):
        StatusTrial.reads += 1
        return self._status

    @status.setter
    def status(self, value):
        self._status = value

    def is_finished(self):
        return self.status in ("TERMINATED", "ERROR")


def test_the_scheduler_chooses_as_fifo_does_at_a_constant_cost():
    from ray.tune.schedulers import FIFOScheduler

    from tokensweep.sweep.tuner import AshaScheduler, FifoScheduler

    trials = [StatusTrial("TERMINATED") for _ in range(1_000)] + [StatusTrial("RUNNING"), StatusTrial("PENDING")]
    controller = types.SimpleNamespace(get_trials=lambda: trials)
    ours, theirs = FifoScheduler(), FIFOScheduler()

    def check():
        assert ours.choose_trial_to_run(controller) is theirs.choose_trial_to_run(controller)

    check()
    StatusTrial.reads = 0
    for _ in range(10):  # Tune's steps while nothing changes
        assert ours.choose_trial_to_run(controller) is trials[-1]
    assert StatusTrial.reads <= 10 * 5, StatusTrial.reads  # FIFOScheduler reads all 1,002 statuses each time
    trials[-1].status = "RUNNING"  # started; then the searcher adds two, one runs and finishes first
    trials += [StatusTrial("PENDING"), StatusTrial("PENDING")]
    check()
    trials[-2].status = "TERMINATED"
    check()
    failed = trials[1_000]  # retried: Tune requeues it at the end of the list
    failed.status = "PENDING"
    trials.append(trials.pop(1_000))
    check()
    for t in trials:
        if t.status != "TERMINATED":
            t.status = "PAUSED" if t is failed else "TERMINATED"
    check()
    assert ours.choose_trial_to_run(controller) is failed
    failed.status = "ERROR"
    check()
    assert ours.choose_trial_to_run(controller) is None
    # a new controller (a restored experiment): a new list, looked at from its start
    restored = [StatusTrial("PENDING")]
    assert ours.choose_trial_to_run(types.SimpleNamespace(get_trials=lambda: restored)) is restored[0]
    asha = AshaScheduler(time_attr="epoch", metric="top1", mode="max", max_t=4)
    assert asha.choose_trial_to_run(controller) is None
    import pickle

    assert pickle.loads(pickle.dumps(ours)).choose_trial_to_run(controller) is None


# --- validation of a big grid stays exact --------------------------------------------------------------


def test_a_big_grid_validates_every_trial_exactly(tmp_path):
    from tokensweep.errors import SpecError
    from tokensweep.spec import load_spec

    spec = tmp_path / "big.toml"
    spec.write_text(grid_spec("big", 3_000).replace("[grid]", "[grid]\nlr = [0.001]"))
    loaded = load_spec(str(spec), [])
    assert len(loaded.variants) == 3_000 and loaded.variants[-1].config.seed == 2_999
    assert {type(v.config.lr) for v in loaded.variants} == {float}
    # one bad value among thousands is still caught, and named where it was set
    spec.write_text(grid_spec("big", 3_000).replace("[grid]", "[grid]\nbatch_size = [8, 0]"))
    with pytest.raises(SpecError, match=r"big\.toml:\d+: grid\.batch_size must be an integer from 1 to 65536, got 0 \(batch_size=0, seed=0\)$"):
        load_spec(str(spec), [])
    spec.write_text(grid_spec("big", 3).replace("[grid]", "[grid]\nepochs = [1, 1.5]"))
    with pytest.raises(SpecError, match=r"grid\.epochs must be an integer, got 1\.5 \(epochs=1\.5, seed=0\)$"):
        load_spec(str(spec), [])


def test_all_knobs_follows_the_registry(monkeypatch):
    from trials.models import all_knobs, registry
    from trials.models.catalog import registered_embeddings
    from trials.plugins import Knob, register_embedding

    before = dict(all_knobs())
    with pytest.raises(TypeError):
        all_knobs()["x"] = None  # read-only: it is shared between calls
    monkeypatch.setattr(registry, "_EMBEDDINGS", dict(registered_embeddings()))

    @register_embedding(knobs=[Knob("scale_test_width", int, default=3, low=1, high=9, help="w")])
    def scale_test_embed(img_size, dim, *, scale_test_width=3):
        raise NotImplementedError

    assert "scale_test_width" in all_knobs() and set(before) < set(all_knobs())
    monkeypatch.undo()  # the registry as it was: so are its knobs
    assert dict(all_knobs()) == before


# --- a 2,000-trial grid: it starts, and Ctrl-C ends it cleanly -----------------------------------------


