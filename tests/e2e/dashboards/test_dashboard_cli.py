"""`tokensweep dashboard` end to end from a real MLflow store: files, front, artifacts, --serve."""

import argparse
import json
import threading
import time
import urllib.request

import pytest
from mlflow import MlflowClient

import vocab
from dashboard_store import EXPERIMENT
from dashboards.build import OUTPUT_FILES
from tokensweep.cli import main
from tokensweep.commands import dashboard



def test_dashboard_from_mlflow_writes_files_and_logs_them_to_the_sweep_run(fresh_store, tmp_path, capsys):
    out = tmp_path / "dash"
    assert main(["dashboard", fresh_store.experiment, "--tracking-uri", fresh_store.uri, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)  # and no temp files left
    front = json.loads((out / "pareto.json").read_text())
    # patch-0 (fastest), st-2 and st-3 (most accurate); conv-0 is beaten by st-2 on both axes.
    assert [f["run_name"] for f in front["front"]] == ["st-3", "st-2", "patch-0"]
    assert [f["run_id"] for f in front["front"]] == [fresh_store.run_ids[n] for n in ("st-3", "st-2", "patch-0")]
    assert {e["run_name"]: e["reason"] for e in front["excluded"]} == {
        "st-1-failed": "failed", "st-4-no-speed": "missing images_per_sec"
    }
    logged = MlflowClient(fresh_store.uri).list_artifacts(fresh_store.parent_run_id, "dashboard")
    assert sorted(a.path for a in logged) == sorted(f"dashboard/{n}" for n in OUTPUT_FILES)
    assert "logged 4 files" in capsys.readouterr().out


def test_other_objectives_and_no_log(fresh_store, tmp_path):
    out = tmp_path / "dash"
    argv = ["dashboard", fresh_store.experiment, "--tracking-uri", fresh_store.uri, "--out", str(out), "--no-log",
            "--x", "params", "--x-dir", "min", "--y", "top1"]
    assert main(argv) == 0
    front = json.loads((out / "pareto.json").read_text())
    assert front["x"] == {"metric": "params", "direction": "min"}
    # Missing throughput no longer matters; among equal params the best top1 wins alone.
    assert [f["run_name"] for f in front["front"]] == ["st-4-no-speed"]
    assert MlflowClient(fresh_store.uri).list_artifacts(fresh_store.parent_run_id) == []


def test_bad_objective_is_one_line_listing_the_metrics(mlflow_store, tmp_path, capsys):
    argv = ["dashboard", EXPERIMENT, "--tracking-uri", mlflow_store.uri, "--out", str(tmp_path), "--y", "acc"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    metrics = [m for m in dict.fromkeys(vocab.METRICS) if m != "lr"]  # in vocab's order; the column `lr` is the param
    assert err == f"tokensweep dashboard: error: unknown objective metric 'acc'; available metrics: {', '.join(metrics)}\n"


def test_dashboard_from_an_exported_parquet_file(mlflow_store, tmp_path):
    runs = tmp_path / "runs.parquet"
    assert main(["export", EXPERIMENT, "--tracking-uri", mlflow_store.uri, "--out", str(runs)]) == 0
    assert main(["dashboard", EXPERIMENT, "--runs", str(runs), "--out", str(tmp_path / "d")]) == 0
    assert len(json.loads((tmp_path / "d" / "pareto.json").read_text())["front"]) == 3


def test_serve_refreshes_the_page_while_the_sweep_runs(fresh_store, tmp_path, monkeypatch):
    """A trial that finishes while serving appears in the served files at the next refresh."""
    args = argparse.Namespace(
        experiment=fresh_store.experiment, tracking_uri=fresh_store.uri, runs=None, out=str(tmp_path),
        x="images_per_sec", x_dir="max", x_scale="auto", y="top1", y_dir="max", no_log=True, serve=True,
        host="127.0.0.1", port=0, interval=1, all_sweeps=False, paper=False,
    )
    dashboard.build(args, refresh_seconds=1)
    servers = []
    real_start_server = dashboard.start_server
    monkeypatch.setattr(dashboard, "start_server", lambda *a: servers.append(real_start_server(*a)) or servers[-1])
    stop = threading.Event()
    thread = threading.Thread(target=dashboard.serve, args=(args, stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not servers and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{servers[0].server_address[1]}"
        assert len(json.load(urllib.request.urlopen(f"{base}/pareto.json"))["front"]) == 3
        add_fastest_trial(fresh_store)
        deadline = time.monotonic() + 60
        page = ""
        while "late-fast" not in page and time.monotonic() < deadline:
            time.sleep(0.5)
            page = urllib.request.urlopen(f"{base}/pareto.html").read().decode()  # written last
        assert "late-fast" in page and '<meta http-equiv="refresh" content="1">' in page
        front = json.load(urllib.request.urlopen(f"{base}/pareto.json"))["front"]
        assert front[-1]["run_name"] == "late-fast"
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def add_fastest_trial(store) -> None:
    from mlflow.entities import Metric, Param

    client = MlflowClient(store.uri)
    exp_id = client.get_experiment_by_name(store.experiment).experiment_id
    tags = {"mlflow.parentRunId": store.parent_run_id, "tokensweep.role": "trial", "trial_id": "late"}
    run_id = client.create_run(exp_id, run_name="late-fast", tags=tags).info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("top1", 30.0, now, 2), Metric("images_per_sec", 9000.0, now, 2)],
                     params=[Param("embedding", "patch")])
    client.set_terminated(run_id, "FINISHED")


def test_help_lists_the_metrics_and_directions_default_to_vocabs(mlflow_store, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["dashboard", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the epilog
    for name in ("top1 (max)", "images_per_sec (max)", "flops (min)", "peak_mem_mb (min)", "bench_images_per_sec (max)"):
        assert name in text
    out = tmp_path / "dash"
    argv = ["dashboard", EXPERIMENT, "--tracking-uri", mlflow_store.uri, "--out", str(out), "--no-log", "--x", "flops"]
    assert main(argv) == 0
    assert json.loads((out / "pareto.json").read_text())["x"] == {"metric": "flops", "direction": "min"}  # vocab's
