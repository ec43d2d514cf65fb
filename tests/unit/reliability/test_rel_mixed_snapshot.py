"""A resumed sweep whose storage holds Tune's trial list from one snapshot and its searcher from another
(no Ray started: Tune's own searcher classes, saved and restored through Tune's files).

Tune writes its next snapshot into the staging folder while the upload of the last may still be copying it,
so the two files can come from different snapshots. The trial list decides: no variant is skipped (a sweep
that ended one trial short with exit 0, seen once beside CI on S3 storage) and none is run twice.
"""

import pytest
from ray import tune
from ray.tune.experiment import Trial

from tokensweep.sweep import budget, tuner

VARIANTS = ["a", "b", "c", "d"]


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the driver's StateRecord
    return tmp_path


def _configs():
    return [{"variant": v, "index": i} for i, v in enumerate(VARIANTS)]


def _search_alg():
    return budget.searching(tuner.GridSearcher(_configs()), max_concurrent=2)


def _trainable(config):  # never run: no Ray is started
    return None


def _saved_after(experiment, events) -> str:
    """Tune's searcher state as a first session saved it after `events` ("+id": a trial handed out, "-id": one
    ended), in the folder a resumed controller restores it from."""
    search_alg = _search_alg()
    limiter = search_alg.searcher
    for event in events:
        if event[0] == "+":
            assert limiter.suggest(event[1:]) is not None
        else:
            limiter.on_trial_complete(event[1:])
    folder = experiment / "staging"
    folder.mkdir()
    search_alg.save_to_dir(str(folder), session_str="first")
    return str(folder)


def _resumed(experiment, staging, trials):
    """The sweep's search algorithm after `tokensweep run --resume` restored its Tuner, Tune's resume loaded its
    saved searcher from `staging`, and the restored experiment's first step began with `trials`."""
    tuner.new_tuner(
        _trainable,
        tune_config=tune.TuneConfig(search_alg=_search_alg(), num_samples=len(VARIANTS)),
        run_config=tune.RunConfig(name="s", storage_path=str(experiment / "ray_results")),
    )
    job = tuner.restored(str(experiment / "ray_results" / "s"), _trainable, [], verbose=0)
    search_alg = tuner.search_alg_of(job)
    search_alg.restore_from_dir(staging)
    for callback in job._local_tuner.get_run_config().callbacks:  # as TuneController.step calls them
        callback.on_step_begin(iteration=0, trials=trials)
    return search_alg


def _trial(trial_id, variant, finished):
    trial = Trial("_trainable", config={"variant": variant}, trial_id=trial_id, stub=True)
    trial.set_status(Trial.TERMINATED if finished else Trial.RUNNING)
    return trial


def _handed_out(search_alg, start=5):
    """The variants the resumed sweep starts, each ending before the next is asked for, and the last answer."""
    limiter, names = search_alg.searcher, []
    for k in range(start, start + len(VARIANTS) + 1):
        config = limiter.suggest(f"t{k}")
        if config is None or config == tune.search.Searcher.FINISHED:
            return names, config
        names.append(config["variant"])
        limiter.on_trial_complete(f"t{k}")
    return names, "more than the grid"


def test_a_searcher_newer_than_the_trial_list_hands_out_the_variant_the_list_lacks(experiment):
    # the first session handed out d (t4) after the snapshot whose trial list the storage kept: t1-t3
    staging = _saved_after(experiment, ["+t1", "+t2", "-t1", "+t3", "-t2", "+t4"])
    trials = [_trial("t1", "a", True), _trial("t2", "b", True), _trial("t3", "c", False)]
    search_alg = _resumed(experiment, staging, trials)
    assert search_alg.searcher.live_trials == {"t3"}  # t4 does not exist: it must not hold one of the two slots
    assert _handed_out(search_alg) == (["d"], tune.search.Searcher.FINISHED)


def test_a_trial_list_newer_than_the_searcher_runs_no_variant_twice(experiment):
    staging = _saved_after(experiment, ["+t1", "+t2", "-t1", "-t2", "+t3"])  # the list also has t4 (d), running
    trials = [_trial("t1", "a", True), _trial("t2", "b", True), _trial("t3", "c", False), _trial("t4", "d", False)]
    search_alg = _resumed(experiment, staging, trials)
    assert _handed_out(search_alg) == ([], tune.search.Searcher.FINISHED)


def test_a_grid_resumed_with_a_gap_in_its_list_fills_it_in_order(experiment):
    # the list lacks b but has c after it: b runs first, then the grid goes on past the variants that have trials
    staging = _saved_after(experiment, ["+t1", "+t2", "-t1", "-t2", "+t3"])
    search_alg = _resumed(experiment, staging, [_trial("t1", "a", True), _trial("t3", "c", True)])
    assert _handed_out(search_alg) == (["b", "d"], tune.search.Searcher.FINISHED)
