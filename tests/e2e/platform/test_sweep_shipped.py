"""Every shipped spec runs shrunk with `--smoke` (as Ray's examples run their `--smoke-test`), and the
bring-your-own-embedding example runs end to end: Ray, MLflow, the dashboard."""

import pytest

from helpers import ONE_AT_A_TIME, REPO, run_cli, SWEEPS
from sweep_helpers import check_child_schema, sweep_runs
from tokensweep.spec import load_spec

EXAMPLE = REPO / "examples" / "overlap_patch"
# What is checked is that every configuration builds, trains, measures and is recorded, not what it learns:
# two epochs (a per-epoch curve) of two small steps, no bench stage (tests/e2e/platform/test_bench_stage.py),
# one trial at a time.
SMALLER = [f"--set={key}" for key in (
    "trial.epochs=2", "trial.max_steps_per_epoch=2", "trial.tiny_train_per_class=8", "trial.tiny_val_per_class=4",
    "trial.bench_batch=8", "trial.bench_steps=2", "bench.enabled=false", "tracking.system_metrics=false",
    ONE_AT_A_TIME)]  # fmt: skip


@pytest.mark.parametrize("name", ["paper-table6", "paper-table7", "paper-table8"])
def test_every_shipped_grid_spec_runs_with_smoke(name, tmp_path, ray_head):
    """(channels-optuna.toml runs with --smoke in test_sweep_ray.py's Optuna test.)"""
    spec = SWEEPS / f"{name}.toml"
    run_cli(["run", spec, "--smoke", *SMALLER, "--address", ray_head.address, "--quiet"], cwd=tmp_path, env=ray_head.env,
            timeout=900, check_rc=0)  # fmt: skip
    db = tmp_path / "mlflow.db"
    parents, children = sweep_runs(db, name)
    expected = load_spec(spec, smoke=True, environ={})  # as the sweep saw it: base_env drops $TOKENSWEEP_DATA
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert sorted(c.info.run_name for c in children) == sorted(v.name for v in expected.variants)
    for child in children:
        assert child.info.status == "FINISHED" and child.data.params["backbone"] == "tiny"
        check_child_schema(child, db)


def test_a_users_embedding_sweeps_beside_the_built_ins(tmp_path, ray_token_env, monkeypatch):
    """examples/overlap_patch: its module beside its spec, imported by the driver and every trial's worker."""
    import sys

    from trials import load_plugin
    from trials.models import registry, registered_embeddings

    monkeypatch.syspath_prepend(str(EXAMPLE))  # for this test's own schema checks
    monkeypatch.setattr(registry, "_EMBEDDINGS", dict(registered_embeddings()))
    monkeypatch.delitem(sys.modules, "overlap_patch", raising=False)
    load_plugin("overlap_patch")
    proc = run_cli(["run", EXAMPLE / "sweep.toml", *SMALLER, "--num-cpus", "2", "--quiet"], cwd=tmp_path, env=ray_token_env,
                   timeout=900, check_rc=0)  # fmt: skip
    db = tmp_path / "mlflow.db"
    parents, children = sweep_runs(db, "overlap-patch")
    assert [p.info.status for p in parents] == ["FINISHED"] and len(children) == 5
    assert {c.data.params["embedding"] for c in children} == {"patch", "conv", "supertoken", "overlap_patch"}
    kernels = sorted(c.data.params["kernel"] for c in children if c.data.params["embedding"] == "overlap_patch")
    assert kernels == ["16", "24"]  # the plugin's knob, an MLflow param of its trials only
    for child in children:
        assert child.info.status == "FINISHED"
        check_child_schema(child, db)
    assert "Traceback" not in proc.stdout + proc.stderr
    dash = run_cli(["dashboard", "overlap-patch", "--out", tmp_path / "dash"], cwd=tmp_path, env=ray_token_env,
                   timeout=300, check_rc=0)  # fmt: skip
    page = (tmp_path / "dash" / "pareto.html").read_text()
    assert "overlap_patch" in page and "kernel" in page, dash.stdout  # the knob in the hover text and the table
