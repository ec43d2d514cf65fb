"""[search] confirm_seeds: Optuna's final Pareto set, replicated before it is published.

After the search, every configuration on the front of its finished trials (non-dominated on the
search objectives) is trained again with each confirm seed. A seed the search already trained that
configuration with is not run twice (the default seed 0 usually is one of them). The confirmation
trials are a second Tune experiment inside the sweep's Tune folder (`<tune path>/confirm`): a
GridSearcher over (front configuration x seed), logged by the sweep's own MLflow callback as child
runs of the same parent, each with its configuration's `tokensweep.config_id` (the seed is not part
of it). They teach Optuna nothing: the study holds the search only. `--resume` restores this
experiment like the search's, so a driver killed during it re-runs no finished confirmation.
"""

from __future__ import annotations

from ray import tune

from tokensweep.payload import TrialPayload, grid_config
from tokensweep.spec import SweepSpec
from tokensweep.sweep import RunOptions, TrialOutcome, progress, tuner
from tokensweep.sweep.bench import SearchSettings, reported_key
from tokensweep.sweep.worker import train_trial


EXPERIMENT = "confirm"


def confirm_path(tune_path: str) -> str:
    return tune_path.rstrip("/") + "/" + EXPERIMENT


def dominates(a: tuple, b: tuple, modes: tuple) -> bool:
    """a is at least as good as b on every objective and better on one."""
    better = [(x > y if m == "max" else x < y) for x, y, m in zip(a, b, modes)]
    worse = [(x < y if m == "max" else x > y) for x, y, m in zip(a, b, modes)]
    return any(better) and not any(worse)


def front(tune_trials, objectives: tuple[tuple[str, str], ...], throughput: SearchSettings | None = None) -> list:
    """The finished trials no other finished trial dominates (ties all stay), by Optuna trial number:
    on the figures Optuna was told (`throughput`: the search's settings, tokensweep.sweep.bench)."""
    names = tuple(reported_key(m, throughput) for m, _ in objectives)
    modes = tuple(mode for _, mode in objectives)
    scored = []
    for t in tune_trials:
        result = t.last_result or {}
        if t.status == "TERMINATED" and all(isinstance(result.get(m), (int, float)) for m in names):
            scored.append((t, tuple(float(result[m]) for m in names)))
    on_front = [t for t, v in scored if not any(dominates(w, v, modes) for _, w in scored)]
    return sorted(on_front, key=lambda t: TrialPayload.decode(t.config).optuna_number or 0)


def confirm_configs(spec: SweepSpec, tune_trials, platform) -> list[dict]:
    """Tune configs of (front configuration x confirm seed), leaving out what the search already trained."""
    from trials import TrialConfig

    def config_and_seed(t):
        config = TrialConfig.from_dict(TrialPayload.decode(t.config).values)
        return config.config_id(), config.seed

    trained = {config_and_seed(t) for t in tune_trials if t.status == "TERMINATED"}
    configs, confirmed = [], set()
    for t in front(tune_trials, spec.objectives, platform.search_throughput):
        payload = TrialPayload.decode(t.config)
        config_id, _ = config_and_seed(t)
        if config_id in confirmed:  # Optuna suggested the same configuration twice
            continue
        confirmed.add(config_id)
        for seed in spec.confirm_seeds:
            if (config_id, seed) in trained:
                continue
            name = f"confirm-t{payload.optuna_number or 0:03d}-seed={seed}"
            configs.append(grid_config(None, name, {**payload.values, "seed": seed}, platform))
    return configs


def run_confirmation(spec: SweepSpec, options: RunOptions, tune_path: str, callback) -> list[TrialOutcome]:
    """The confirmation trials (run, or resumed), summarised; [] for grids and searches without confirm_seeds."""
    if spec.search != "optuna" or not spec.confirm_seeds:
        return []
    from tokensweep.sweep import driver  # its Tune helpers (driver imports this module)

    path = confirm_path(tune_path)
    trainable = tune.with_resources(train_trial, {"cpu": spec.cpus, "gpu": spec.gpus or 0})
    if tune.Tuner.can_restore(path):
        job = tuner.restore_tuner(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        total = len(tune.ExperimentAnalysis(path).trials)
        driver.replace_callback(job, [callback, *progress.tune_callbacks(spec, options, total)], options.verbose)
    else:
        searched = tune.ExperimentAnalysis(tune_path).trials
        if any(t.status not in ("TERMINATED", "ERROR") for t in searched):
            return []  # the search has not ended: its front is not final (a --resume confirms it)
        configs = confirm_configs(spec, searched, driver.platform_of(spec, options, callback.parent_run_id))
        if not configs:
            return []
        job = tuner.new_tuner(
            trainable,
            param_space={},
            tune_config=tune.TuneConfig(
                search_alg=tuner.GridSearcher(configs),
                num_samples=len(configs),
                max_concurrent_trials=spec.max_concurrent_trials,
                trial_name_creator=driver.trial_name,
                trial_dirname_creator=driver.trial_dirname,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=EXPERIMENT,
                storage_path=tune_path,
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints),
                callbacks=[callback, *progress.tune_callbacks(spec, options, len(configs))],
                verbose=options.verbose,
            ),
        )
    job.fit()
    return driver.summarise(path)
