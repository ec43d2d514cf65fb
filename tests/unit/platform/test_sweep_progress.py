"""The compact sweep view (tokensweep.sweep.progress) fed Tune's events directly: its lines when the output
is not a terminal, its redraws on one, the ETA, and `tokensweep run`'s -q/-v switches.

Tune's Trial objects need a running experiment; the view reads only a trial's id, name, config,
last result and failure count, so a plain stand-in carries those (the real ones are exercised by
the smoke sweep in test_sweep_ray.py, which also counts the lines a real run prints).
"""

import io

import pytest

from helpers import Clock
from sweep_helpers import FakeTrial
from tokensweep.commands.run import quiet_ray
from tokensweep.sweep.progress import SweepProgress, bar, fmt_duration
from tokensweep.payload import Platform, grid_config

PLATFORM = Platform("sqlite:///x.db", "exp", False, 10.0, ())


def stand_in(trial_id: str, name: str, epochs: int | None = 3) -> FakeTrial:
    values = {"model": "vit_tiny_patch"} if epochs is None else {"model": "vit_tiny_patch", "epochs": epochs}
    return FakeTrial(trial_id, name, values, PLATFORM)


def view(num_trials=2, tty=False):
    out, clock = io.StringIO(), Clock(1000.0)
    progress = SweepProgress(num_trials, out=out, tty=tty, clock=clock)
    progress.setup()
    return progress, out, clock


def result(epoch, **metrics):
    return {"epoch": epoch, **metrics}


def test_not_a_terminal_one_line_per_trial_event():
    progress, out, clock = view()
    a, b = stand_in("a1", "vit_tiny_patch"), stand_in("b1", "vit_tiny_conv")
    progress.on_trial_start(0, [], a)
    progress.on_trial_start(0, [], b)
    for epoch in (1, 2, 3):
        clock.now += 10
        progress.on_trial_result(0, [], a, result(epoch, top1=10.0 * epoch, train_images_per_sec_epoch=900.0))
        progress.on_step_end(0, [])
    a.last_result = {"epoch": 3, "top1": 30.0, "images_per_sec": 12345.6}
    progress.on_trial_complete(0, [], a)
    b.num_failures = 1
    progress.on_trial_recover(0, [], b)
    progress.on_trial_error(0, [], b)
    progress.on_experiment_end([])
    lines = out.getvalue().splitlines()
    assert lines == [
        "[0/2 done] started   vit_tiny_patch",
        "[0/2 done] started   vit_tiny_conv",
        "[1/2 done] finished  vit_tiny_patch  epoch 3/3  top1 30.00  12,346 img/s  30s",
        "[1/2 done] retrying  vit_tiny_conv after epoch 0/3 (failure 1): trial failed (no error recorded)",
        "[2/2 done] failed    vit_tiny_conv  epoch 0/3  trial failed (no error recorded)",
    ]
    assert "\x1b" not in out.getvalue()  # no cursor movement in a log file


def test_a_failed_trials_line_names_the_file_with_its_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    progress, out, _ = view(num_trials=1)
    trial = stand_in("a1", "vit_tiny_patch")
    trial.path = str(tmp_path / "ray_results" / "s" / "vit_tiny_patch_a1")
    progress.on_trial_start(0, [], trial)
    progress.on_trial_error(0, [], trial)
    last = out.getvalue().splitlines()[-1]
    assert last == "[1/1 done] failed    vit_tiny_patch  epoch 0/3  trial failed (no error recorded)  (traceback: ray_results/s/vit_tiny_patch_a1/error.txt)"


def test_not_a_terminal_a_progress_line_every_few_minutes_only():
    progress, out, clock = view(num_trials=4)
    trial = stand_in("a1", "t")
    progress.on_trial_start(0, [], trial)
    clock.now += 60
    progress.on_step_end(0, [])
    assert len(out.getvalue().splitlines()) == 1  # a minute in: nothing more
    clock.now += 300
    progress.on_trial_result(0, [], trial, result(1, top1=5.0))
    progress.on_step_end(0, [])
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("[------------------------] 0/4 trials, 1 running  6m00s elapsed, ETA ")


def test_eta_from_this_sessions_epoch_rate():
    progress, out, clock = view(num_trials=2)
    a, b = stand_in("a1", "a", epochs=4), stand_in("b1", "b", epochs=4)
    progress.on_trial_start(0, [], a)
    progress.on_trial_start(0, [], b)
    assert progress.eta_s() is None  # no epoch done yet: no rate
    clock.now += 20
    progress.on_trial_result(0, [], a, result(1))
    progress.on_trial_result(0, [], b, result(1))
    # 2 epochs in 20 s -> 0.1 epoch/s; 6 epochs remain -> 60 s
    assert progress.eta_s() == pytest.approx(60.0)
    assert "ETA 1m00s" in progress.summary_line()


def test_eta_counts_trials_not_started_yet():
    progress, out, clock = view(num_trials=3)
    a = stand_in("a1", "a", epochs=2)
    progress.on_trial_start(0, [], a)
    clock.now += 10
    progress.on_trial_result(0, [], a, result(1))
    # 1 epoch in 10 s; remaining: 1 of this trial + 2 trials x 2 epochs (the mean planned) = 5 -> 50 s
    assert progress.eta_s() == pytest.approx(50.0)


def test_a_resumed_sweep_counts_the_trials_that_ended_before():
    progress, out, clock = view(num_trials=3)
    before = stand_in("old", "done-before")
    before.status = "TERMINATED"
    now = stand_in("new", "t")
    progress.on_step_end(0, [before, now])
    progress.on_trial_start(0, [before, now], now)
    assert out.getvalue().splitlines()[-1] == "[1/3 done] started   t"
    clock.now += 10
    progress.on_trial_result(0, [], now, result(1))
    # 1 epoch in 10 s; remaining: 2 of this trial + 1 trial not started x 3 epochs (the finished one is not)
    assert progress.eta_s() == pytest.approx(50.0)


def test_trial_without_an_epochs_value_uses_trialconfigs_default():
    from trials import TrialConfig

    progress, out, clock = view(num_trials=1)
    progress.on_trial_start(0, [], stand_in("a1", "a", epochs=None))
    assert progress.trials["a1"].planned == TrialConfig().epochs


def test_on_a_terminal_the_live_view_is_redrawn_in_place():
    progress, out, clock = view(num_trials=2, tty=True)
    a = stand_in("a1", "vit_tiny_patch")
    progress.on_trial_start(0, [], a)
    clock.now += 5
    progress.on_trial_result(0, [], a, result(1, top1=12.5, train_images_per_sec_epoch=1500.0))
    text = out.getvalue()
    # the event line, then the view (a running row and the bar), cleared and drawn again on the result
    assert text.startswith("[0/2 done] started   vit_tiny_patch\n  running   vit_tiny_patch  epoch 0/3")
    assert "\x1b[2F\x1b[J  running   vit_tiny_patch  epoch 1/3  top1 12.50  train 1,500 img/s  5s\n" in text
    progress.on_experiment_end([])
    assert out.getvalue().endswith("\x1b[2F\x1b[J")  # the view is gone at the end: the summary follows


def test_redraws_are_rate_limited():
    progress, out, clock = view(num_trials=1, tty=True)
    a = stand_in("a1", "a")
    progress.on_trial_start(0, [], a)
    before = out.getvalue()
    progress.on_step_end(0, [])  # same instant: not drawn again
    assert out.getvalue() == before
    clock.now += 1
    progress.on_step_end(0, [])
    assert len(out.getvalue()) > len(before)


def test_a_pickled_view_carries_no_stream_or_trials():
    import pickle

    progress = SweepProgress(3, out=None, tty=False)
    progress.setup()
    progress.on_trial_start(0, [], stand_in("a1", "a"))
    copy = pickle.loads(pickle.dumps(progress))
    assert copy.trials == {} and copy.num_trials == 3


def test_small_formatters():
    assert [fmt_duration(s) for s in (None, 5, 65, 3725)] == ["-", "5s", "1m05s", "1h02m"]
    assert bar(0.5, width=4) == "[##--]" and bar(2, width=2) == "[##]"


def test_quiet_ray_switches_only_in_default_and_quiet_modes():
    env = {}
    quiet_ray(0, env)
    assert env == {"RAY_LOG_TO_DRIVER": "0", "RAY_AIR_NEW_OUTPUT": "0", "TUNE_PRINT_ALL_TRIAL_ERRORS": "0"}
    env = {"RAY_LOG_TO_DRIVER": "1"}
    quiet_ray(0, env)
    assert env["RAY_LOG_TO_DRIVER"] == "1"  # the user's value wins
    env = {}
    quiet_ray(1, env)
    assert env == {}  # -v: Ray as it is


def test_run_flags_quiet_and_verbose_exclude_each_other(capsys):
    from tokensweep.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "x.toml", "-vv"]).verbose == 2
    assert parser.parse_args(["run", "x.toml", "-q"]).quiet
    with pytest.raises(SystemExit) as err:
        parser.parse_args(["run", "x.toml", "-q", "-v"])
    assert err.value.code == 2


def test_a_resumed_sweep_gets_this_sessions_callbacks_and_verbosity():
    """Tuner.restore brings back the first session's callbacks: ours are replaced, a -q resume has no view."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from tokensweep.sweep.tuner import replace_callback
    from tokensweep.sweep.tuner import ContinueFromLastResult, ErrorsAsText, ForgetDeletedCheckpoints, RecordSnapshots, SearcherFollowsTrials
    from tokensweep.tracking.callback import MlflowTrialLogger

    class UsersCallback(tune.Callback):
        pass

    users = UsersCallback()
    first = [MlflowTrialLogger("sqlite:///a.db", "s", "1", "p", None), CSVLoggerCallback(), JsonLoggerCallback(), SweepProgress(4), users]
    run_config = tune.RunConfig(name="s", storage_path="/storage", callbacks=first, verbose=0)  # as restored

    class StandInTuner:  # Ray 2.60 keeps the restored RunConfig at tuner._local_tuner.get_run_config()
        class _local_tuner:
            get_run_config = staticmethod(lambda: run_config)

    now = [MlflowTrialLogger("sqlite:///a.db", "s", "1", "p", None), CSVLoggerCallback(), JsonLoggerCallback()]  # -q: no view
    assert replace_callback(StandInTuner(), now, verbose=2)
    # and the resume's own: checkpoints Tune's state lists but lost, or holds but never registered; the searcher
    # agreeing with the restored trials; the guards of the storage
    users_kept, forget, register, follow, record, as_text, *ours = run_config.callbacks
    assert users_kept is users and isinstance(forget, ForgetDeletedCheckpoints) and ours == now and run_config.verbose == 2
    assert isinstance(register, ContinueFromLastResult) and isinstance(follow, SearcherFollowsTrials)
    assert isinstance(record, RecordSnapshots) and record.experiment == "/storage/s" and isinstance(as_text, ErrorsAsText)
