"""What `tokensweep run` ends with: how to open the sweep's runs in MLflow, and the parent run's record
of the whole sweep (its summary metrics, its times over every --resume)."""

import time

import pytest

import vocab
from helpers import run_cli
from sweep_helpers import sweep_runs


SPEC = """
[sweep]
name = "two"
smoke = true
seeds = [0, 1]
[trial]
epochs = 1
max_steps_per_epoch = 2
tiny_train_per_class = 20
tiny_val_per_class = 5
[grid]
embedding = ["patch", "conv"]
[resources]
cpus = 1
gpus = 0
max_concurrent_trials = 1
[bench]
enabled = false
[tracking]
system_metrics = false
"""


def test_parent_run_carries_summary_metrics_and_whole_sweep_times_after_resume(tmp_path, ray_head):
    from dashboards.stats import summarize

    db = tmp_path / "mlflow.db"
    spec = tmp_path / "two.toml"  # two configurations x two seeds, one short epoch each
    spec.write_text(SPEC)
    args = ["run", spec, "--address", ray_head.address, "--quiet"]
    run_cli(args, cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=0)
    (parent,), children = sweep_runs(db, "two")
    first = {k: float(v) for k, v in parent.data.tags.items() if k.startswith("tokensweep.time.")}
    # the summary metrics, against the children's own top-1 grouped by configuration
    by_config = {}
    for child in children:
        by_config.setdefault(child.data.tags["tokensweep.config_id"], []).append(child.data.metrics["top1"])
    best = max((summarize(values) for values in by_config.values()), key=lambda s: s.mean)
    metrics = parent.data.metrics
    assert set(metrics) == {f.name for f in vocab.SWEEP_FIELDS}
    assert metrics["configurations"] == len(by_config) == 2 and 1 <= metrics["front_size"] <= 2
    assert (metrics["best_top1_mean"], metrics["best_top1_ci_low"], metrics["best_top1_ci_high"]) == pytest.approx(
        (best.mean, best.low, best.high))  # fmt: skip

    started = time.perf_counter()
    run_cli([*args, "--resume"], cwd=tmp_path, env=ray_head.env, timeout=600, check_rc=0)
    resume_wall = time.perf_counter() - started
    (parent,), _ = sweep_runs(db, "two")
    after = {k: float(v) for k, v in parent.data.tags.items() if k.startswith("tokensweep.time.")}
    resumed_s = after["tokensweep.time.sweep_s"] - first["tokensweep.time.sweep_s"]  # what the resume added
    assert 0 < resumed_s <= resume_wall, (first, after)
    assert all(after[k] >= first[k] for k in first), (first, after)  # every phase summed over both runs
    assert parent.info.end_time - parent.info.start_time >= 1000 * after["tokensweep.time.sweep_s"] - 100  # tags: 0.1 s
    assert set(parent.data.metrics) == {f.name for f in vocab.SWEEP_FIELDS}
