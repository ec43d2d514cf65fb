"""`runs_table` / `tokensweep export` against a real MLflow sqlite store."""

import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dashboard_store import CHANNELS, EXPERIMENT, make_store
from dashboards.errors import InputError
from dashboards.runs import knob_field, runs_schema
from tokensweep.cli import main
from tokensweep.tracking.export import parse_param, runs_table



def rows_by_name(table: pa.Table) -> dict:
    return {row["run_name"]: row for row in table.to_pylist()}


def test_one_typed_row_per_trial_run(mlflow_store):
    table = runs_table(mlflow_store.experiment, mlflow_store.uri)
    knobs = [knob_field("channels", pa.string()), knob_field("cluster_iters", pa.int64()),
             knob_field("conv_depth", pa.int64()), knob_field("extra_conv", pa.bool_()),
             knob_field("mask_border", pa.bool_())]  # typed from their values, after `backbone`, by name
    # typed columns, in the documented order, each with its kind in the field metadata
    assert table.schema.remove_metadata().equals(runs_schema(knobs), check_metadata=True)
    assert table.schema.metadata[b"tokensweep.experiment"] == EXPERIMENT.encode()
    assert table.column("run_name").to_pylist() == [
        "patch-0", "conv-0", "st-2", "st-3", "st-1-failed", "st-4-no-speed"
    ]  # trials only (no parent), in start order
    rows = rows_by_name(table)
    st = rows["st-2"]
    assert st["conv_depth"] == 6 and st["cluster_iters"] == 2 and st["img_size"] == 32 and st["epochs"] == 2
    assert st["extra_conv"] is False and st["mask_border"] is False and rows["st-4-no-speed"]["mask_border"] is True
    assert st["lr"] == 0.002 and st["channels"] == CHANNELS and st["dataset"] == "tiny"
    assert st["top1"] == 52.0 and st["top5"] == 90.0  # latest value, not epoch 1's
    assert st["images_per_sec"] == 1500.0 and st["flops"] == 2.1e8
    assert st["peak_mem_mb"] is None and st["joules_per_image"] is None  # not measured on CPU: null
    assert st["device"] == "cpu: Test CPU" and st["precision"] == "fp32" and st["gpu_shared"] is False
    assert st["parent_run_id"] == mlflow_store.parent_run_id and st["trial_id"] == "trial_002"
    assert st["start_time"] is not None and st["end_time"] >= st["start_time"]
    patch = rows["patch-0"]
    assert patch["conv_depth"] is None and patch["extra_conv"] is None and patch["channels"] is None  # "None"
    failed = rows["st-1-failed"]
    assert failed["status"] == "FAILED" and failed["failure_reason"].startswith("NonFiniteLoss")
    assert rows["st-4-no-speed"]["images_per_sec"] is None
    assert rows["patch-0"]["sweep_search"] is None and rows["patch-0"]["optuna_trial_number"] is None
    assert st["backbone"] == "tiny"  # no backbone param: derived from vit_tiny_supertoken
    assert st["params"] == 5_400_000 and isinstance(st["params"], int)  # vocab: an int metric


def test_optuna_sweeps_carry_their_search_and_trial_numbers(mlflow_store, tmp_path):
    store = make_store(tmp_path, experiment="opt", search="optuna", db_dir=mlflow_store.db_dir)
    rows = rows_by_name(runs_table("opt", store.uri))
    assert rows["st-3"]["sweep_search"] == "optuna" and rows["st-3"]["optuna_trial_number"] == 3


def test_export_command_writes_parquet_atomically(mlflow_store, tmp_path, capsys):
    out = tmp_path / "sub" / "runs.parquet"
    assert main(["export", EXPERIMENT, "--tracking-uri", mlflow_store.uri, "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 6
    assert sorted(p.name for p in out.parent.iterdir()) == ["runs-configurations.parquet", "runs.parquet"]  # no temp files
    printed = capsys.readouterr().out
    assert "wrote 6 runs" in printed and "wrote 5 configurations" in printed  # FINISHED runs, one seed each


def test_default_tracking_uri_is_the_environment_variable(mlflow_store, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store.uri)
    monkeypatch.chdir(tmp_path)
    assert main(["export", EXPERIMENT]) == 0 and (tmp_path / "runs.parquet").is_file()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "experiment, uri, message",
    [
        ("tiny-swep", None, "no experiment 'tiny-swep' at sqlite:"),
        (EXPERIMENT, "sqlite:////nonexistent/dir/mlflow.db", "no MLflow store at sqlite:////nonexistent/dir/mlflow.db"),
        (EXPERIMENT, "http://127.0.0.1:{closed_port}", "cannot reach the MLflow tracking server at http://127.0.0.1:"),
    ],
    ids=["misspelt-experiment", "missing-store", "closed-server"],  # the port is chosen at run time: every
)  # pytest-xdist worker must collect the same test names
def test_bad_sources_are_one_line_errors(mlflow_store, experiment, uri, message, capsys):
    uri = (uri or mlflow_store.uri).format(closed_port=closed_port())
    with pytest.raises(InputError, match=message):
        runs_table(experiment, uri)
    assert main(["export", experiment, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tokensweep export: error: ") and err.count("\n") == 1, err
    if experiment == "tiny-swep":
        assert "did you mean 'tiny-sweep'?" in err and "; existing experiments: 'Default', " in err
        assert "'tiny-sweep'" in err.split("existing experiments:")[1]


def test_unparsable_params_name_the_run_and_param():
    with pytest.raises(InputError, match="run x: param conv_depth is 'six', expected int64"):
        parse_param("six", pa.int64(), "run x: param conv_depth")
    assert parse_param("3.0", pa.int64(), "") == 3 and parse_param("True", pa.bool_(), "") is True
    assert parse_param("None", pa.float64(), "") is None and parse_param("", pa.string(), "") is None


def test_newest_sweep_only_unless_all_sweeps(fresh_store):
    """A sweep run again (--fresh) gets a new parent run in the same experiment: its old trials are
    not this sweep's results, so they are left out unless asked for."""
    from mlflow import MlflowClient

    client = MlflowClient(fresh_store.uri)
    exp_id = client.get_experiment_by_name(fresh_store.experiment).experiment_id
    parent = client.create_run(exp_id, run_name="again", tags={"tokensweep.role": "sweep"}).info.run_id
    tags = {"mlflow.parentRunId": parent, "tokensweep.role": "trial", "trial_id": "trial_000"}
    client.create_run(exp_id, run_name="patch-again", tags=tags)

    newest = runs_table(fresh_store.experiment, fresh_store.uri)
    assert newest.column("run_name").to_pylist() == ["patch-again"]
    everything = runs_table(fresh_store.experiment, fresh_store.uri, all_sweeps=True)
    assert everything.num_rows == 7 and set(everything.column("parent_run_id").to_pylist()) == {fresh_store.parent_run_id, parent}


def test_export_writes_the_configurations_beside_the_runs(mlflow_store, tmp_path, capsys):
    from dashboard_store import trial
    from dashboards.stats import summarize

    seeds = [trial(f"st-3-s{s}", "supertoken", metrics=dict(top1=50.0 + s, images_per_sec=1000.0 + 10 * s),
                   tags={"tokensweep.config_id": "cfg-st3"}, seed=s, cluster_iters=3) for s in range(3)]  # fmt: skip
    alone = trial("patch-0", "patch", metrics=dict(top1=40.0, images_per_sec=2000.0), tags={"tokensweep.config_id": "cfg-p"})
    make_store(tmp_path, experiment="replicated", trials=[*seeds, alone], db_dir=mlflow_store.db_dir)
    out = tmp_path / "out" / "runs.parquet"
    uri = f"sqlite:///{mlflow_store.db_dir / 'mlflow.db'}"
    assert main(["export", "replicated", "--tracking-uri", uri, "--out", str(out)]) == 0
    configs = {r["config_id"]: r for r in pq.read_table(out.with_name("runs-configurations.parquet")).to_pylist()}
    st = configs["cfg-st3"]
    direct = summarize([50.0, 51.0, 52.0])
    assert st["n"] == 3 and st["name"] == "st-3" and st["cluster_iters"] == 3 and len(st["run_ids"]) == 3
    assert (st["top1_mean"], st["top1_ci_low"], st["top1_ci_high"]) == pytest.approx((51.0, direct.low, direct.high))
    assert configs["cfg-p"]["n"] == 1 and configs["cfg-p"]["top1_ci_low"] is None
    assert "wrote 2 configurations" in capsys.readouterr().out


def test_two_sweeps_exported_to_one_folder_keep_their_own_configurations(mlflow_store, fresh_store, tmp_path, capsys):
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    assert main(["export", EXPERIMENT, "--tracking-uri", mlflow_store.uri, "--out", str(first)]) == 0
    assert main(["export", fresh_store.experiment, "--tracking-uri", fresh_store.uri, "--out", str(second)]) == 0
    for out, experiment in ((first, EXPERIMENT), (second, fresh_store.experiment)):
        configs = pq.read_table(tmp_path / f"{out.stem}-configurations.parquet")
        assert configs.schema.metadata[b"tokensweep.experiment"] == experiment.encode() and configs.num_rows == 5
    assert capsys.readouterr().err == ""
    # the same --out for another sweep: replaced, and said so
    assert main(["export", EXPERIMENT, "--tracking-uri", mlflow_store.uri, "--out", str(second)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"tokensweep export: note: replacing {path}, which held sweep {fresh_store.experiment!r}"
                   for path in (second, tmp_path / "second-configurations.parquet")]  # fmt: skip
