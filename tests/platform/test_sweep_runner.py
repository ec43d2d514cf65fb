"""The pieces of tokensweep.tune_runner that need no running Ray: configs, names, search space, params."""

import types

import pytest

from sweep_helpers import SWEEPS
from tokensweep.spec import load_spec, parse_spec

tune_runner = pytest.importorskip("tokensweep.tune_runner")


def _trial(config, trial_id="abcde_00001"):
    return types.SimpleNamespace(config=config, trial_id=trial_id)


def test_grid_param_space_carries_names_and_values():
    spec = load_spec(SWEEPS / "smoke.toml")
    space = tune_runner.build_param_space(spec, {"tracking_uri": "sqlite:////x.db"})
    names = space["variant"]["grid_search"]
    assert names == [v.name for v in spec.variants]
    config = {"variant": names[2], "_variants": space["_variants"], "_platform": space["_platform"]}
    values = tune_runner.trial_values(config)
    assert values["model"] == "vit_tiny_supertoken" and values["cluster_iters"] == 1
    assert values["threads"] == 1  # one CPU per trial -> one torch thread
    assert tune_runner.trial_name(_trial(config)) == names[2]
    assert tune_runner.trial_dirname(_trial(config)).endswith("_abcde_00001")


def test_optuna_space_suggests_every_width_and_records_the_trial_number():
    import optuna

    spec = parse_spec(
        '[sweep]\nname = "o"\n[trial]\nmodel = "vit_tiny_supertoken"\n[search]\nalgorithm = "optuna"\n'
        'objectives = { top1 = "max", images_per_sec = "max" }\n[search.params]\n'
        '"channels[0]" = { low = 8, high = 32, step = 8 }\n"channels[5]" = { choices = [32, 64] }\n'
        'lr = { low = 1e-4, high = 1e-2, log = true }\n',
        "o.toml",
    )
    study = optuna.create_study(directions=["maximize", "maximize"])
    trial = study.ask()
    extra = tune_runner.OptunaSpace(spec.params)(trial)
    assert extra == {"optuna_trial_number": 0}
    assert set(trial.params) == {"channels[0]", "channels[5]", "lr"}
    config = {"trial": spec.base, **trial.params, **extra, "_platform": {}}
    values = tune_runner.trial_values(config)
    assert values["channels"][0] == trial.params["channels[0]"] and values["channels"][5] in (32, 64)
    assert values["channels"][1:5] == [16, 16, 32, 32]  # the model's own widths
    assert tune_runner.trial_name(_trial(config)).startswith("t000-channels=")
    params = tune_runner.mlflow_params(values, 0)
    assert params["optuna_trial_number"] == 0 and params["channels"].count(",") == 5


def test_mlflow_params_only_name_knobs_the_embedding_has():
    patch = tune_runner.mlflow_params({"model": "vit_tiny_patch", "epochs": 20})
    assert patch == {
        "model": "vit_tiny_patch", "embedding": "patch", "img_size": 32, "epochs": 20,
        "batch_size": 128, "lr": 1e-3, "seed": 0, "dataset": "tiny",
    }  # fmt: skip
    st = tune_runner.mlflow_params({"model": "vit_tiny_supertoken", "cluster_iters": 2})
    assert st["cluster_iters"] == 2 and st["conv_depth"] == 6 and st["channels"] == "8,16,16,32,32,32"


def test_asha_scheduler_from_spec():
    spec = load_spec(SWEEPS / "smoke.toml", ["scheduler.type=asha", "scheduler.grace_period=1"])
    asha = tune_runner.build_scheduler(spec)
    assert type(asha).__name__ == "AsyncHyperBandScheduler"
    assert asha._time_attr == "epoch" and asha._max_t == spec.max_t == 3
    assert tune_runner.build_scheduler(load_spec(SWEEPS / "smoke.toml")) is None


def test_spec_hash_ignores_resources_and_comments():
    a = load_spec(SWEEPS / "smoke.toml")
    b = load_spec(SWEEPS / "smoke.toml", ["resources.cpus=2", "tracking.system_metrics=false"])
    c = load_spec(SWEEPS / "smoke.toml", ["trial.epochs=5"])
    assert tune_runner.spec_hash(a) == tune_runner.spec_hash(b) != tune_runner.spec_hash(c)


def test_failure_reason_is_the_root_exception_in_one_line():
    class Wrapper(Exception):
        def __init__(self, cause):
            super().__init__("Traceback ...\nlots of lines")
            self.cause = cause

    root = ValueError("non-finite training loss\nmore")
    trial = types.SimpleNamespace(get_pickled_error=lambda: Wrapper(root), get_error=lambda: None)
    assert tune_runner.failure_reason(trial) == "ValueError: non-finite training loss"
    text_only = types.SimpleNamespace(get_pickled_error=lambda: None, get_error=lambda: "Failure # 1\nboom: it broke\n")
    assert tune_runner.failure_reason(text_only) == "boom: it broke"
