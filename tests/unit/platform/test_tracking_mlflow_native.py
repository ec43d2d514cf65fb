"""What MLflow's own UI and search read from a sweep, on a real sqlite store (no Ray): the experiment's
kind, the runs' Source, each trial's data set as an MLflow dataset input."""

import pytest

from tokensweep.tracking import tags as T
from tokensweep.tracking.tracker import SweepTracker, dataset_inputs
from trials import TrialConfig
from trials.data.describe import describe_data, describe_folder


@pytest.fixture
def tracker(tmp_path):
    t = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "native")
    t.ensure_experiment()
    t.start_parent(tune_path=str(tmp_path / "rr"), command="tokensweep run x.toml", tags=T.source_tags("sweeps/x.toml"),
                   spec_text="", spec_name="x.toml", resolved={})  # fmt: skip
    return t


def test_experiment_is_a_model_training_experiment(tmp_path, tracker):
    exp = tracker.client.get_experiment(tracker.experiment_id)
    assert exp.tags[T.EXPERIMENT_KIND] == "custom_model_development"
    # one made before (without the tag) gets it the next time a sweep opens it
    tracker.client.delete_experiment_tag(tracker.experiment_id, T.EXPERIMENT_KIND)
    again = SweepTracker(tracker.tracking_uri, "native")
    assert again.ensure_experiment() == tracker.experiment_id
    assert tracker.client.get_experiment(tracker.experiment_id).tags[T.EXPERIMENT_KIND] == "custom_model_development"


def test_the_kind_and_the_link_are_what_the_installed_mlflow_ui_reads():
    """Read from MLflow's own UI bundle (server/js): an upgrade that renames them fails here."""
    from pathlib import Path

    import mlflow

    bundle = "".join(p.read_text(errors="ignore") for p in (Path(mlflow.__file__).parent / "server/js/build/static/js").glob("main.*.js"))
    assert f'CUSTOM_MODEL_DEVELOPMENT="{T.KIND_MODEL_TRAINING}"' in bundle
    assert f'"{T.EXPERIMENT_KIND}"' in bundle
    assert 'MACHINE_LEARNING="machine_learning"' in bundle and 'get("workflowType")' in bundle  # runs_url's parameter


def test_runs_carry_their_source(tracker):
    run = tracker.client.get_run(tracker.parent_run_id)
    assert run.data.tags["mlflow.source.name"] == "sweeps/x.toml" and run.data.tags["mlflow.source.type"] == "LOCAL"


def test_a_trials_first_report_logs_its_dataset_once(tmp_path, tracker):
    child = tracker.start_child("t1", "trial-1", {"model": "vit_tiny_patch"}, T.source_tags("sweeps/x.toml"))
    data = describe_data(TrialConfig.smoke()).as_dict()
    tracker.log_result(child, {"_dataset": data, "epoch": 1, "epoch_time_s": 1.0, "top1": 5.0}, step=1)
    tracker.log_result(child, {"_dataset": data, "epoch": 2, "epoch_time_s": 1.0}, step=2)  # a resumed trial reports it again
    run = tracker.client.get_run(child)
    (logged,) = run.inputs.dataset_inputs  # MLflow keeps one record of the same data
    assert (logged.dataset.name, logged.dataset.digest, logged.dataset.source_type) == ("tiny", data["digest"], "code")
    assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "training"}
    assert run.data.tags["dataset_digest"] == data["digest"]
    assert "_dataset" not in run.data.metrics and not any(k.startswith("_dataset") for k in run.data.tags)
    # the sweep's run lists the data of its trials
    (on_parent,) = tracker.client.get_run(tracker.parent_run_id).inputs.dataset_inputs
    assert on_parent.dataset.digest == data["digest"]
    # MLflow's search finds runs by their data
    found = tracker.client.search_runs([tracker.experiment_id], f"datasets.digest = '{data['digest']}'")
    assert sorted(r.info.run_id for r in found) == sorted([child, tracker.parent_run_id])


def test_a_folders_dataset_input_names_its_path_and_sizes(tmp_path):
    import json

    for split, n in (("train", 3), ("val", 1)):
        for c in ("a", "b"):
            (tmp_path / "d" / split / c).mkdir(parents=True)
            for i in range(n):
                (tmp_path / "d" / split / c / f"{i}.jpg").write_bytes(b"x")
    (entry,) = dataset_inputs(describe_folder(tmp_path / "d").as_dict())
    assert entry.dataset.name == "d" and entry.dataset.source_type == "local"
    assert json.loads(entry.dataset.source) == {"uri": (tmp_path / "d").as_uri()}
    profile = json.loads(entry.dataset.profile)
    assert profile == {"num_rows": 8, "train_images": 6, "val_images": 2, "classes": 2, "form": "original"}


def test_runs_url_opens_the_model_training_side():
    assert T.runs_url("http://127.0.0.1:5000/", "7") == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
