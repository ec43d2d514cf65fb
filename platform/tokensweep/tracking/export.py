"""Read a sweep's trial runs out of MLflow into one typed pyarrow table (`dashboards.runs.RUNS_SCHEMA`).

MLflow stores params as strings and keeps only the latest value of each metric in a run's
summary; this module turns them back into int64/float64/bool columns, one row per trial child
run, so that the dashboards and anyone with pandas/DuckDB can read a sweep without MLflow.
"""

import os
import urllib.parse
from difflib import get_close_matches
from pathlib import Path

import pyarrow as pa

from dashboards.atomic import atomic_path
from dashboards.errors import InputError
from dashboards.runs import EXPERIMENT_METADATA_KEY, METRIC_COLUMNS, PARAM_COLUMNS, RUNS_SCHEMA
from tokensweep.tracking.uris import redact, resolve_tracking_uri, server_unreachable

# The platform's tags (as in tracking.mlflow_log, which imports MLflow at import time).
ROLE_TAG = "tokensweep.role"
SEARCH_TAG = "tokensweep.search"
TRIAL_FILTER = f"tags.`{ROLE_TAG}` = 'trial'"
SWEEP_FILTER = f"tags.`{ROLE_TAG}` = 'sweep'"
PAGE_SIZE = 1000
NULL_TEXT = {"", "none", "null", "nan"}
TRUE_TEXT = {"true", "1", "yes"}
FALSE_TEXT = {"false", "0", "no"}
TAG_TEXT_COLUMNS = ("device", "precision", "torch_version", "failure_reason")


def check_reachable(uri: str) -> None:
    """Fail in one line, before MLflow's long retries or its silent creation of an empty database."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite":
        path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else parsed.path
        if path and path != ":memory:" and not Path(path).is_file():
            raise InputError(
                f"no MLflow store at {uri} ({path} does not exist); run a sweep first, "
                "or pass --tracking-uri / set MLFLOW_TRACKING_URI"
            )
    elif parsed.scheme in ("http", "https"):
        # any HTTP answer counts (older servers or proxies may lack /health); user:password@ in the URI
        # is left out of the probe (urllib cannot take it) and out of the message
        reason = server_unreachable(uri, timeout=10)
        if reason is not None:
            raise InputError(f"cannot reach the MLflow tracking server at {redact(uri)}: {reason}")


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _mlflow_call(uri: str, call, *args, **kwargs):
    """Run one MLflow client call; turn a store/connection failure into a one-line InputError."""
    from mlflow.exceptions import MlflowException

    try:
        return call(*args, **kwargs)
    except MlflowException as err:
        first_line = (str(err.message).strip().splitlines() or ["(no message)"])[0]
        raise InputError(f"cannot read MLflow at {redact(uri)}: {redact(first_line)}") from None


def find_experiment(client, name: str, uri: str):
    """The experiment called `name`, or an error listing the ones that exist."""
    experiment = _mlflow_call(uri, client.get_experiment_by_name, name)
    if experiment is not None and experiment.lifecycle_stage == "active":
        return experiment
    names = sorted(e.name for e in _mlflow_call(uri, client.search_experiments, max_results=1000))
    close = get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listing = ", ".join(repr(n) for n in names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    state = " (it is deleted)" if experiment is not None else ""
    raise InputError(f"no experiment {name!r}{state} at {redact(uri)}{hint}; existing experiments: {listing or '(none)'}")


def search_all_runs(client, experiment_id: str, filter_string: str, uri: str) -> list:
    """Every run matching the filter, page by page (MLflow returns at most PAGE_SIZE at a time)."""
    runs, token = [], None
    while True:
        page = _mlflow_call(
            uri,
            client.search_runs,
            [experiment_id],
            filter_string=filter_string,
            max_results=PAGE_SIZE,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def parse_param(text: str | None, kind: pa.DataType, where: str):
    """An MLflow param/tag string as its column's Python value; "None"/"" -> None."""
    if text is None or str(text).strip().lower() in NULL_TEXT:
        return None
    text = str(text).strip()
    try:
        if pa.types.is_integer(kind):
            try:
                return int(text)
            except ValueError:  # "3.0" from a float-typed search space
                number = float(text)
                if not number.is_integer():
                    raise
                return int(number)
        if pa.types.is_floating(kind):
            return float(text)
        if pa.types.is_boolean(kind):
            lowered = text.lower()
            if lowered in TRUE_TEXT | FALSE_TEXT:
                return lowered in TRUE_TEXT
            raise ValueError
    except ValueError:
        raise InputError(f"{where} is {text!r}, expected {kind}") from None
    return text


def run_row(run, search_by_parent: dict[str, str]) -> dict:
    """One trial run as a row of RUNS_SCHEMA (plus any extra metrics it logged)."""
    info, data = run.info, run.data
    params, tags, metrics = data.params, data.tags, data.metrics
    where = f"run {info.run_name or info.run_id}:"
    parent = tags.get("mlflow.parentRunId")
    row = {
        "run_id": info.run_id,
        "run_name": info.run_name or info.run_id,
        "trial_id": tags.get("trial_id"),
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "parent_run_id": parent,
    }
    for name, kind in PARAM_COLUMNS:
        text = params.get(name, tags.get(name))  # optuna_trial_number may be a tag
        row[name] = parse_param(text, kind, f"{where} param {name}")
    for name, _ in METRIC_COLUMNS:
        row[name] = metrics.get(name)
    for name in TAG_TEXT_COLUMNS:
        row[name] = tags.get(name) or None
    row["gpu_shared"] = parse_param(tags.get("gpu_shared"), pa.bool_(), f"{where} tag gpu_shared")
    row["sweep_search"] = search_by_parent.get(parent)
    row.update(extra_metrics(metrics))
    return row


def extra_metrics(metrics: dict) -> dict:
    """Metrics beyond the schema (a new measurement), kept as columns; MLflow system metrics are not."""
    known = set(RUNS_SCHEMA.names)
    return {name: value for name, value in metrics.items() if name not in known and "/" not in name}


def to_table(rows: list[dict], experiment_name: str) -> pa.Table:
    extra = sorted({k for row in rows for k in row} - set(RUNS_SCHEMA.names))
    schema = pa.schema(list(RUNS_SCHEMA) + [pa.field(name, pa.float64()) for name in extra])
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    return table.replace_schema_metadata({EXPERIMENT_METADATA_KEY: experiment_name.encode()})


def runs_table(experiment_name: str, tracking_uri: str | None = None, all_sweeps: bool = False) -> pa.Table:
    """One row per trial run (tag tokensweep.role=trial) of the experiment, ordered by start time, run id.

    By default only the trials of the newest sweep (parent run): a sweep run again with --fresh
    starts a new parent in the same experiment, and its old trials are not this sweep's results.
    all_sweeps=True keeps every sweep's trials (the parent_run_id column tells them apart).
    """
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = _client(uri)
    experiment = find_experiment(client, experiment_name, uri)
    sweeps = search_all_runs(client, experiment.experiment_id, SWEEP_FILTER, uri)  # oldest first
    search_by_parent = {s.info.run_id: s.data.tags.get(SEARCH_TAG) for s in sweeps}
    trials = search_all_runs(client, experiment.experiment_id, TRIAL_FILTER, uri)
    if sweeps and not all_sweeps:
        newest = sweeps[-1].info.run_id
        trials = [t for t in trials if t.data.tags.get("mlflow.parentRunId") == newest]
    rows = sorted((run_row(r, search_by_parent) for r in trials), key=lambda r: (r["start_time"] or 0, r["run_id"]))
    return to_table(rows, experiment_name)


def sweep_run_id(experiment_name: str, tracking_uri: str | None = None) -> str | None:
    """The newest parent run (tag tokensweep.role=sweep) of the experiment, or None if it has none."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = _client(uri)
    experiment = find_experiment(client, experiment_name, uri)
    sweeps = _mlflow_call(
        uri,
        client.search_runs,
        [experiment.experiment_id],
        filter_string=SWEEP_FILTER,
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return sweeps[0].info.run_id if sweeps else None


def log_artifacts(run_id: str, paths: list[Path], tracking_uri: str | None = None, folder: str = "dashboard") -> None:
    """Attach files to a run (the sweep's parent run: the dashboard lives with the sweep in MLflow)."""
    uri = resolve_tracking_uri(tracking_uri)
    client = _client(uri)
    for path in paths:
        _mlflow_call(uri, client.log_artifact, run_id, str(path), folder)


def write_parquet(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename): a crash never leaves a truncated Parquet file."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)
