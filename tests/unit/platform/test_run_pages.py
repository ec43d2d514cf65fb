"""One MLflow pager (tokensweep.tracking.store.all_runs) behind every reader of a sweep's runs: the bench's
trial runs, the tracker's searches and the export read every page, however small a page is."""

import types

import pytest

from tokensweep.tracking import store


def test_every_reader_of_a_sweeps_runs_reads_every_page(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from tokensweep.sweep import bench
    from tokensweep.tracking import tags as T
    from tokensweep.tracking.export import search_all_runs
    from tokensweep.tracking.tracker import SweepTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "pages")
    tracker.start_parent(tune_path=str(tmp_path / "t"), command="test", tags={}, spec_text="", spec_name="s.toml", resolved={})
    ids = [tracker.start_child(f"trial_{i}", f"trial_{i}", {}, {}) for i in range(5)]
    for run_id in ids:
        tracker.end_child(run_id, "FINISHED")
    monkeypatch.setattr(store, "PAGE", 2)  # five runs: three pages, the last one short

    assert sorted(r.info.run_id for r in bench.child_runs(tracker)) == sorted(ids)
    children = f"tags.`{T.PARENT}` = {store.quote(tracker.parent_run_id)}"
    assert sorted(r.info.run_id for r in tracker.search_all(children)) == sorted(ids)
    exported = search_all_runs(MlflowClient(uri), tracker.experiment_id, children, uri)
    assert [r.info.run_id for r in exported] == ids  # oldest first


def test_a_store_lost_while_the_summary_is_written_is_reported_as_itself(monkeypatch):
    """An unreachable store is close_parent's to report: its own error comes through, not a NameError."""
    from tokensweep.sweep import driver

    def refused(tracker):
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(driver, "server_unreachable", lambda uri: None)  # it answered a moment before
    monkeypatch.setattr(driver, "runs_table_of", refused)  # the summary's first read of the store
    with pytest.raises(ConnectionError, match="Connection refused"):
        driver.log_summary(types.SimpleNamespace(tracking_uri="http://127.0.0.1:1"))
