"""A new user's CPU Optuna search: their own ImageFolder (generated images), their own embedding
registered by a plugin, the documented `tokensweep run SPEC --smoke --data-dir DIR` on local Ray with
a sqlite MLflow store. Optuna's study and `tokensweep dashboard`'s pareto.json name the same Pareto
trials, each scored on the figure the dashboard plots, and every trial read the user's data."""

import json

import pytest

from helpers import ONE_AT_A_TIME, run_cli
from sweep_helpers import sweep_runs

pytestmark = pytest.mark.slow  # local Ray, MLflow, Optuna, three trials and their benches

# More token mixers cost images/sec: the search has a throughput axis to trade against top-1.
PLUGIN = '''
from torch import nn
from trials.models.embeddings import PatchEmbed
from trials.plugins import Knob, register_embedding


@register_embedding(knobs=[Knob("mixers", int, default=1, low=0, high=6, help="Linear+GELU layers on each token")])
def mixed_patch(img_size, dim, *, mixers=1):
    """Patches, then `mixers` Linear+GELU layers on each token."""
    patches = PatchEmbed(img_size, dim)
    module = nn.Sequential(patches, *(nn.Sequential(nn.Linear(dim, dim), nn.GELU()) for _ in range(mixers)))
    module.grid_size = patches.grid_size
    return module
'''

SPEC = """
[sweep]
name = "mine-optuna"
plugins = ["my_embeddings"]

[trial]
model = "vit_tiny_mixed_patch"

[search]
algorithm = "optuna"
seed = 1  # its first four draws are three architectures, so its first three at least two (seed 0 draws mixers = 4 four times)
objectives = { top1 = "max", images_per_sec = "max" }

[search.params]
mixers = { low = 0, high = 6, step = 2 }

[bench]
repeats = 3
steps = 3
"""


def test_optuna_and_the_dashboard_agree_on_a_users_data_and_embedding(tmp_path, ray_token_env):
    from trials.data import write_imagefolder

    data = write_imagefolder(tmp_path / "digits", classes=4, train_per_class=48, val_per_class=10, img_size=32, seed=3)
    (tmp_path / "my_embeddings.py").write_text(PLUGIN)
    (tmp_path / "mine.toml").write_text(SPEC)
    # --smoke's 3 samples, one at a time; 2 epochs: the objectives are only in the last of several reports
    run_cli(["run", "mine.toml", "--smoke", "--data-dir", data, "--num-cpus", "2", "--quiet",
             "--set", "trial.epochs=2", "--set", "tracking.system_metrics=false", "--set", ONE_AT_A_TIME],
            cwd=tmp_path, env=ray_token_env, timeout=600, check_rc=0)  # fmt: skip
    run_cli(["dashboard", "mine-optuna", "--out", tmp_path / "dash"], cwd=tmp_path, env=ray_token_env, timeout=300, check_rc=0)

    _, children = sweep_runs(tmp_path / "mlflow.db", "mine-optuna")
    searched = [c for c in children if "optuna_trial_number" in c.data.params]
    assert len(searched) == 3 and {c.data.params["embedding"] for c in children} == {"mixed_patch"}
    assert {c.data.params["dataset"] for c in children} == {"imagefolder"}  # the user's folder, not generated data

    import optuna

    study = optuna.load_study(study_name="mine-optuna", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    pareto = json.loads((tmp_path / "dash" / "pareto.json").read_text())
    number = {c.info.run_id: int(c.data.params["optuna_trial_number"]) for c in searched}
    optuna_front = sorted(t.number for t in study.best_trials)
    dashboard_front = sorted(number[p["run_id"]] for p in pareto["front"])
    told = {t.user_attrs["mlflow_run_id"]: t.values for t in study.trials}
    print(f"\n[fronts] Optuna's best_trials {optuna_front}, the dashboard's {dashboard_front}; (top1, images/sec) told: "
          + ", ".join(f"#{number[r]} {v}" for r, v in sorted(told.items(), key=lambda kv: number.get(kv[0], -1))))  # fmt: skip
    assert pareto["x_figure"] == "search_images_per_sec" and pareto["runs"] == 3
    assert len({c.data.params["mixers"] for c in searched}) > 1  # more than one architecture competed
    assert dashboard_front == optuna_front
    for point in pareto["front"]:
        assert (point["y"], point["x"]) == pytest.approx(told[point["run_id"]])
