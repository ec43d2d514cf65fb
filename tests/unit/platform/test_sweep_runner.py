"""The pieces of the sweep package that need no running Ray: what Tune carries, names, searchers, params."""

import types

from helpers import SWEEPS
from tokensweep.spec import load_spec, parse_spec
from tokensweep.sweep import driver, tuner
from tokensweep.payload import Platform, TrialPayload, grid_config, search_base_config
from tokensweep.tracking.callback import failure_reason

PLATFORM = Platform("sqlite:////x.db", "smoke", True, 10.0, ())


def _trial(config, trial_id="abcde_00001"):
    return types.SimpleNamespace(config=config, trial_id=trial_id)


def test_grid_trials_carry_only_their_own_values():
    spec = load_spec(SWEEPS / "smoke.toml")
    configs = [grid_config(i, v.name, v.values, PLATFORM) for i, v in enumerate(spec.variants)]
    searcher = tuner.GridSearcher(configs)
    handed = [searcher.suggest(f"t{i}") for i in range(len(configs))]
    assert searcher.suggest("one more") == tuner.Searcher.FINISHED
    assert [c["variant"] for c in handed] == [v.name for v in spec.variants]
    payload = TrialPayload.decode(handed[2])
    assert payload.values["model"] == "vit_tiny_supertoken" and payload.values["cluster_iters"] == 1
    assert payload.values["threads"] == 1  # one CPU per trial -> one torch thread
    assert payload.index == 2 and tuner.trial_name(_trial(handed[2])) == spec.variants[2].name
    assert tuner.trial_dirname(_trial(handed[2])).endswith("_abcde_00001")
    # nothing in a trial's config grows with the grid
    assert all(set(c) == {"variant", "index", "trial", "_platform"} for c in handed)


def test_grid_searcher_resumes_where_it_got_to(tmp_path):
    spec = load_spec(SWEEPS / "smoke.toml")
    configs = [grid_config(i, v.name, v.values, PLATFORM) for i, v in enumerate(spec.variants)]
    first = tuner.GridSearcher(configs)
    first.suggest("a"), first.suggest("b")
    first.save(str(tmp_path / "state.json"))
    again = tuner.GridSearcher(configs)
    again.restore(str(tmp_path / "state.json"))
    assert again.suggest("c")["index"] == 2


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
    extra = tuner.OptunaSpace(spec.params)(trial)
    assert extra == {"optuna_trial_number": 0}
    assert set(trial.params) == {"channels[0]", "channels[5]", "lr"}
    config = {**search_base_config(spec.base, PLATFORM), **trial.params, **extra}
    payload = TrialPayload.decode(config)
    values = payload.values
    assert values["channels"][0] == trial.params["channels[0]"] and values["channels"][5] in (32, 64)
    assert values["channels"][1:5] == [16, 16, 32, 32]  # the model's own widths
    assert tuner.trial_name(_trial(config)).startswith("t000-channels=")
    params, tags = driver.DescribeTrial(spec)(payload)
    assert params["optuna_trial_number"] == 0 and params["channels"].count(",") == 5
    assert len(tags["tokensweep.config_id"]) == 12


def test_run_params_only_name_knobs_the_embedding_has():
    text = '[sweep]\nname = "p"\n[trial]\nepochs = 20\n[grid]\nembedding = ["patch", "supertoken"]\ncluster_iters = [2]\n'
    spec = parse_spec(text, "p.toml")
    describe = driver.DescribeTrial(spec)
    configs = [grid_config(i, v.name, v.values, PLATFORM) for i, v in enumerate(spec.variants)]
    patch, _ = describe(TrialPayload.decode(configs[0]))
    assert patch == {
        "model": "vit_s_patch", "embedding": "patch", "backbone": "s", "img_size": 224, "epochs": 20,
        "batch_size": 128, "lr": 1e-3, "seed": 0, "dataset": "tiny",
    }  # fmt: skip
    st, _ = describe(TrialPayload.decode(configs[1]))
    assert st["cluster_iters"] == "2" and st["conv_depth"] == "6" and st["channels"] == "16,32,32,64,64,64"


def test_config_id_is_the_same_for_every_seed_of_a_configuration():
    spec = load_spec(SWEEPS / "smoke.toml", ["sweep.seeds=[0, 1, 2]"])
    assert len(spec.variants) == 12
    describe = driver.DescribeTrial(spec)
    ids = {}
    for i, v in enumerate(spec.variants):
        params, tags = describe(TrialPayload.decode(grid_config(i, v.name, v.values, PLATFORM)))
        ids.setdefault(tags["tokensweep.config_id"], set()).add(params["seed"])
    assert len(ids) == 4 and all(seeds == {0, 1, 2} for seeds in ids.values())


def test_asha_scheduler_from_spec():
    spec = load_spec(SWEEPS / "smoke.toml", ["scheduler.type=asha", "scheduler.grace_period=1"])
    asha = tuner.asha_scheduler(spec)
    from ray.tune.schedulers import ASHAScheduler

    assert isinstance(asha, ASHAScheduler)  # ours picks the next trial at a constant cost (sweep/tuner.py)
    assert asha._time_attr == "epoch" and asha._max_t == spec.max_t == 3
    assert tuner.asha_scheduler(load_spec(SWEEPS / "smoke.toml")) is None


def test_spec_hash_ignores_resources_and_comments():
    a = load_spec(SWEEPS / "smoke.toml")
    b = load_spec(SWEEPS / "smoke.toml", ["resources.cpus=2", "tracking.system_metrics=false"])
    c = load_spec(SWEEPS / "smoke.toml", ["trial.epochs=5"])
    assert driver.spec_hash(a) == driver.spec_hash(b) != driver.spec_hash(c)


def test_failure_reason_is_the_root_exception_in_one_line():
    """From Tune's error text (the last failure's): the worker's traceback prints the root exception first."""
    traceback = (
        "Failure # 1 (occurred at 2026-12-07_03-52-20)\nearlier: failure\n"
        "Failure # 2 (occurred at 2026-12-07_03-52-29)\n"
        "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=14729, ip=127.0.0.1, repr=train_trial)\n"
        '  File "trials/train/loop.py", line 225, in _check_finite\n    raise NonFiniteLoss(...)\n'
        "trials.errors.NonFiniteLoss: non-finite training loss in epoch 1\nmore\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\nRuntimeError: wrapped\n"
    )
    trial = types.SimpleNamespace(error_file=None, get_error=lambda: traceback)
    assert failure_reason(trial) == "NonFiniteLoss: non-finite training loss in epoch 1"
    died = "Failure # 1 (occurred at x)\nThe actor died unexpectedly before finishing this task.\n\tclass_name: ImplicitFunc\n"
    assert failure_reason(types.SimpleNamespace(error_file=None, get_error=lambda: died)).startswith("The actor died")
    assert failure_reason(types.SimpleNamespace(error_file=None, get_error=lambda: None)) == "trial failed (no error recorded)"
