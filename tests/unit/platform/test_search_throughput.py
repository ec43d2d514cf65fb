"""An Optuna search's throughput objective: benched alone on the node, the node's other trials held back,
each architecture once; what the searcher, the study, the confirmation and the runs are told."""

import dataclasses
import fcntl
import json
import os
import tempfile
import threading
import time
from types import SimpleNamespace

import pytest

import vocab
from helpers import SWEEPS
from tokensweep.spec import load_spec
from tokensweep.sweep import bench as st
from tokensweep.payload import Platform, search_base_config

OPTUNA = SWEEPS / "channels-optuna.toml"
TINY = dict(model="vit_tiny_supertoken", dataset="tiny", device="cpu", threads=1, bench_batch=2)


@pytest.fixture
def node_tmp(tmp_path, monkeypatch):
    """The node's temp directory, for this process and the ones it starts."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def optuna_settings(*overrides: str) -> st.SearchSettings | None:
    return st.settings_of(load_spec(OPTUNA, ["resources.gpus=0", *overrides], smoke=True), "run-1")


def test_search_trials_report_the_isolated_figure_and_grids_nothing():
    settings = optuna_settings("bench.repeats=3", "bench.steps=4")
    assert settings == st.SearchSettings("run-1", isolated=True, batch=None, repeats=3, steps=4)
    platform = Platform("sqlite:///x.db", "x", False, 10.0, ("top1", "images_per_sec"), search_throughput=settings)
    assert Platform.decode(json.loads(json.dumps(platform.encode()))) == platform  # as Tune carries it
    assert st.reported_key("images_per_sec", settings) == "search_images_per_sec"
    assert st.reported_key("top1", settings) == "top1"
    assert st.settings_of(load_spec(SWEEPS / "smoke.toml"), "run-1") is None  # a grid: its bench stage only
    assert st.reported_key("images_per_sec", None) == "images_per_sec"
    declared = set(vocab.FINAL_METRICS) | set(vocab.TAGS)
    assert {st.FIGURE, st.SOURCE} <= declared


def test_on_a_shared_gpu_the_search_is_told_the_in_trial_figure_and_says_so():
    settings = optuna_settings("resources.gpus=0.5")
    assert settings.isolated is False
    assert st.reported_key("images_per_sec", settings) == "images_per_sec"
    assert "shared its GPU" in st.study_note(settings) and "alone" in st.study_note(optuna_settings())
    trial = st.TrialThroughput(settings, None)
    assert trial.lock is None
    assert trial.add_to({"top1": 50.0, "images_per_sec": 10.0}) == {"top1": 50.0, "images_per_sec": 10.0,
                                                                     "throughput_source": "images_per_sec"}  # fmt: skip


def holds(path, how) -> bool:
    """Whether another open file could take `how` on `path` now (flock locks belong to the open file)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_bench_excludes_every_step_and_steps_exclude_only_a_bench(node_tmp):
    lock = st.NodeLock("sweep/1")
    gate, steps = lock.directory / "gate.lock", lock.directory / "steps.lock"
    assert lock.directory.parent.parent == node_tmp and lock.directory.name == "sweep_1"  # a name, not a path
    with lock.step():
        assert holds(steps, fcntl.LOCK_SH) and holds(gate, fcntl.LOCK_SH)  # other trials step beside it
        assert not holds(steps, fcntl.LOCK_EX)  # a bench waits for the step
    with lock.alone():
        assert not holds(gate, fcntl.LOCK_SH) and not holds(steps, fcntl.LOCK_SH)  # no step starts
    assert holds(gate, fcntl.LOCK_EX) and holds(steps, fcntl.LOCK_EX)  # both released
    lock.close()


def test_a_waiting_bench_lets_the_steps_in_flight_end_and_no_new_one_start(node_tmp):
    """Without the gate, new shared steps would keep overlapping a waiting bench and could starve it."""
    order = []
    in_flight, waiting_bench, late_step = st.NodeLock("busy"), st.NodeLock("busy"), st.NodeLock("busy")

    def bench():
        with waiting_bench.alone():
            order.append("bench")

    def step():
        with late_step.step():
            order.append("step")

    with in_flight.step():
        benching = threading.Thread(target=bench, daemon=True)
        benching.start()
        deadline = time.monotonic() + 120  # a liveness bound, not a speed check
        while holds(in_flight.directory / "gate.lock", fcntl.LOCK_SH):  # until the bench waits at the gate
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stepping = threading.Thread(target=step, daemon=True)
        stepping.start()
        stepping.join(0.5)  # a step that could pass would be done by now (it proves nothing if slower)
        assert order == []
    benching.join(120)
    stepping.join(120)
    assert order == ["bench", "step"]
    for lock in (in_flight, waiting_bench, late_step):
        lock.close()


def test_an_architecture_is_benched_once_per_node_and_sweep(node_tmp):
    from trials import TrialConfig

    settings = st.SearchSettings("run-2", isolated=True, batch=None, repeats=1, steps=2)
    config = TrialConfig.smoke(**TINY)
    trial = st.TrialThroughput(settings, config)
    assert trial.add_to({"top1": 1.0}) == {"top1": 1.0}  # an epoch's report: nothing benched
    final = trial.add_to({"top1": 50.0, "images_per_sec": 1.0})
    assert final["throughput_source"] == "search_images_per_sec" and final["search_images_per_sec"] > 0
    (cached,) = trial.lock.directory.glob("*.json")
    # a later trial of the architecture (another seed, another recipe) reads the figure the node keeps
    cached.write_text(cached.read_text().replace(repr(final["search_images_per_sec"]), "1234.5"))
    again = st.TrialThroughput(settings, TrialConfig.smoke(**TINY, seed=3, lr=0.01))
    assert again.add_to({"images_per_sec": 2.0})["search_images_per_sec"] == 1234.5
    # another architecture, or another sweep, is benched anew
    other = st.TrialThroughput(settings, TrialConfig.smoke(**TINY, cluster_iters=1))
    assert other.add_to({"images_per_sec": 2.0})["search_images_per_sec"] != 1234.5
    assert len(list(trial.lock.directory.glob("*.json"))) == 2
    fresh = st.TrialThroughput(dataclasses.replace(settings, sweep="run-3"), config)
    assert fresh.add_to({"images_per_sec": 2.0})["search_images_per_sec"] != 1234.5
    for t in (trial, again, other, fresh):
        t.close()


def test_the_confirmation_front_is_read_on_the_figure_optuna_was_told():
    from tokensweep.sweep.confirm import front

    platform = Platform("sqlite:///x.db", "x", False, 10.0, ("top1", "images_per_sec"))

    def trial(number, top1, in_trial, alone):
        config = {**search_base_config({"model": "vit_tiny_patch"}, platform), "optuna_trial_number": number}
        result = {"top1": top1, "images_per_sec": in_trial, "search_images_per_sec": alone}
        return SimpleNamespace(status="TERMINATED", last_result=result, config=config, trial_id=str(number))

    trials = [trial(0, 60, 100, 300), trial(1, 50, 200, 250)]  # 1 is faster in-trial, slower alone
    objectives = (("top1", "max"), ("images_per_sec", "max"))
    settings = st.SearchSettings("s", isolated=True, batch=None, repeats=1, steps=1)
    assert [t.trial_id for t in front(trials, objectives, settings)] == ["0"]
    assert [t.trial_id for t in front(trials, objectives)] == ["0", "1"]


def test_optuna_scores_the_isolated_figure_and_the_study_says_how_it_was_measured(tmp_path):
    import optuna

    from tokensweep.sweep.tuner import optuna_searcher

    spec = load_spec(OPTUNA, ["resources.gpus=0"], smoke=True)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = optuna_searcher(spec, url, st.settings_of(spec, "run-1"))
    assert searcher.metric == ["top1", "search_images_per_sec"]
    study = optuna.load_study(study_name=spec.name, storage=url)
    assert study.metric_names == ["top1", "images_per_sec"]  # named as the spec names them, for optuna-dashboard
    assert study.user_attrs["throughput"] == st.ISOLATED
