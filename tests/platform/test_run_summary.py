"""What `tokensweep run` ends with: how to open the sweep's runs in MLflow, and the parent run's record
of the whole sweep (its summary metrics, its times over every --resume)."""

import re
import time

import pytest

import vocab
from sweep_helpers import run_cli, sweep_runs
from tokensweep.commands.run import MLFLOW_UI_PORT, compare_runs_lines


def test_the_mlflow_ui_link_names_the_port_it_assumes_and_how_to_change_it():
    command, link = compare_runs_lines("sqlite:////work/mlflow.db", "3")
    port = re.search(r" --port (\d+)$", command)
    assert command.startswith("compare runs: mlflow ui --backend-store-uri sqlite:////work/mlflow.db") and port
    assert link.startswith(f"  then open http://127.0.0.1:{port[1]}/#/experiments/3/runs?") and int(port[1]) == MLFLOW_UI_PORT
    assert link.endswith("(with another --port, the same link on that port)")


def test_a_server_is_linked_as_it_is_without_its_password():
    assert compare_runs_lines("https://me:secret@mlflow.example:8443", "3") == [
        "compare runs: https://mlflow.example:8443/#/experiments/3/runs?workflowType=machine_learning"
    ]
    assert compare_runs_lines("postgresql://db/mlflow", "3") == []


# --- the parent run: what the sweep found, and how long the whole sweep took ------------------------------


SPEC = """
[sweep]
name = "two"
smoke = true
seeds = [0, 1]
[trial]
epochs = 1
tiny_train_per_class = 20
[grid]
embedding = ["patch", "conv"]
[resources]
cpus = 1
gpus = 0
[bench]
enabled = false
"""


@pytest.mark.slow  # a sweep on real Ray and MLflow, then its --resume
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
