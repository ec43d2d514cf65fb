"""Read a sweep's trial runs out of MLflow into one typed pyarrow table (`dashboards.runs.runs_schema`).

MLflow stores params and tags as strings and keeps only the latest value of each metric in a run's
summary; this module turns them back into the types `vocab` declares, one row per trial child run,
so that the dashboards and anyone with pandas/DuckDB can read a sweep without MLflow. Params vocab
does not declare (an embedding's knobs: conv_depth, cluster_iters, a plugin's kernel...) become
columns too, typed from their values and marked kind=param.
"""

import math
import os
from difflib import get_close_matches
from pathlib import Path

import pyarrow as pa

import vocab
from vocab.atomic import atomic_path
from dashboards.errors import InputError
from dashboards.runs import ARROW_TYPES, COLUMN_FIELDS, EXPERIMENT_METADATA_KEY, knob_field, runs_schema
from dashboards.runs import backbone as derived_backbone
from tokensweep.tracking import tags
from tokensweep.tracking.store import redact, resolve_tracking_uri, tracking_uri_problem

TRIAL_FILTER = f"tags.`{tags.ROLE}` = 'trial'"
SWEEP_FILTER = f"tags.`{tags.ROLE}` = 'sweep'"
# Runs per search_runs call: MLflow's own limit (SEARCH_MAX_RESULTS_THRESHOLD); fewer round trips
# than its default 1,000 (a 10,000-trial sweep: 1 call, not 10).
PAGE_SIZE = 50_000
NULL_TEXT = {"", "none", "null", "nan"}
TRUE_TEXT = {"true", "1", "yes"}
FALSE_TEXT = {"false", "0", "no"}
DECLARED_PARAMS = set(vocab.PARAMS)
# The run record: where each vocab run field comes from (a test checks every one is here).
RUN_VALUES = {
    "run_id": lambda run, search: run.info.run_id,
    "run_name": lambda run, search: run.info.run_name or run.info.run_id,
    "trial_id": lambda run, search: run.data.tags.get(tags.TRIAL_ID),
    "status": lambda run, search: run.info.status,
    "start_time": lambda run, search: run.info.start_time,
    "end_time": lambda run, search: run.info.end_time,
    "parent_run_id": lambda run, search: run.data.tags.get(tags.PARENT),
    "sweep_search": lambda run, search: search.get(run.data.tags.get(tags.PARENT)),
    "config_id": lambda run, search: run.data.tags.get(tags.CONFIG_ID) or None,
}


def check_reachable(uri: str) -> None:
    """Fail in one line, before MLflow's long retries or its silent creation of an empty database."""
    problem = tracking_uri_problem(uri, existing=True)
    if problem is not None:
        raise InputError(problem)


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


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # "3.0" from a float-typed search space
        number = float(text)
        if not number.is_integer():
            raise
        return int(number)


def parse_param(text: str | None, kind: pa.DataType, where: str):
    """An MLflow param/tag string as its column's Python value; "None"/"" -> None."""
    if text is None or str(text).strip().lower() in NULL_TEXT:
        return None
    text = str(text).strip()
    try:
        if pa.types.is_integer(kind):
            return _integer(text)
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


def _parses(texts: list[str], convert) -> bool:
    try:
        for text in texts:
            convert(text)
    except ValueError:
        return False
    return True


def infer_type(texts: list[str]) -> pa.DataType:
    """A knob's column type from its values: bool if all true/false, int64 if all integers, float64
    if all numbers, else string ("16,32,32,64,64,64" stays a string). Nulls do not count."""
    values = [str(t).strip() for t in texts if t is not None and str(t).strip().lower() not in NULL_TEXT]
    if not values:
        return pa.string()
    if all(v.lower() in ("true", "false") for v in values):
        return pa.bool_()
    if _parses(values, int):
        return pa.int64()
    if _parses(values, float):
        return pa.float64()
    return pa.string()


def knob_fields(runs: list) -> list[pa.Field]:
    """A typed column per MLflow param vocab does not declare, sorted by name (MLflow keeps no order)."""
    texts: dict[str, list[str]] = {}
    for run in runs:
        for name, text in run.data.params.items():
            if name not in DECLARED_PARAMS:
                texts.setdefault(name, []).append(text)
    return [knob_field(name, infer_type(texts[name])) for name in sorted(texts)]


def _metric(value, field: vocab.Field, where: str):
    """MLflow's float as vocab's type: an int metric (params, bad_images) as an int."""
    if value is None or field.type != "int":
        return value
    if math.isnan(value):  # as missing as a null
        return None
    if not float(value).is_integer():
        raise InputError(f"{where} is {value!r}, expected an integer")
    return int(value)


def run_row(run, search_by_parent: dict[str, str], knobs: list[pa.Field]) -> dict:
    """One trial run as a row of runs_schema(knobs) (plus any metric vocab does not declare)."""
    params, run_tags, metrics = run.data.params, run.data.tags, run.data.metrics
    where = f"run {run.info.run_name or run.info.run_id}:"
    row = {}
    for f in COLUMN_FIELDS:
        if f.kind == vocab.RUN:
            row[f.name] = RUN_VALUES[f.name](run, search_by_parent)
        elif f.kind == vocab.PARAM:
            text = params.get(f.name, run_tags.get(f.name))  # optuna_trial_number may be a tag
            row[f.name] = parse_param(text, ARROW_TYPES[f.type], f"{where} param {f.name}")
        elif f.kind == vocab.TAG:
            row[f.name] = parse_param(run_tags.get(f.name), ARROW_TYPES[f.type], f"{where} tag {f.name}")
        else:
            row[f.name] = _metric(metrics.get(f.name), f, f"{where} metric {f.name}")
    row["backbone"] = row["backbone"] or derived_backbone(row)  # older runs: from vit_<backbone>_<embedding>
    for f in knobs:
        row[f.name] = parse_param(params.get(f.name), f.type, f"{where} param {f.name}")
    row.update(extra_metrics(metrics))
    return row


def extra_metrics(metrics: dict) -> dict:
    """Metrics vocab does not declare (a new measurement), kept as columns; MLflow system metrics are not."""
    return {name: value for name, value in metrics.items() if name not in vocab.METRICS and "/" not in name}


def to_table(rows: list[dict], experiment_name: str, knobs: list[pa.Field] = ()) -> pa.Table:
    known = set(runs_schema(knobs).names)
    extra = sorted({k for row in rows for k in row} - known)
    schema = runs_schema(knobs, extra)
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    return table.replace_schema_metadata({EXPERIMENT_METADATA_KEY: experiment_name.encode()})


def runs_table(experiment_name: str, tracking_uri: str | None = None, all_sweeps: bool = False,
               parent_run_id: str | None = None) -> pa.Table:  # fmt: skip
    """One row per trial run (tag tokensweep.role=trial) of the experiment, ordered by start time, run id.

    By default only the trials of the newest sweep (parent run): a sweep run again with --fresh
    starts a new parent in the same experiment, and its old trials are not this sweep's results.
    all_sweeps=True keeps every sweep's trials (the parent_run_id column tells them apart);
    parent_run_id picks one sweep's.
    """
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = _client(uri)
    experiment = find_experiment(client, experiment_name, uri)
    sweeps = search_all_runs(client, experiment.experiment_id, SWEEP_FILTER, uri)  # oldest first
    search_by_parent = {s.info.run_id: s.data.tags.get(tags.SEARCH) for s in sweeps}
    trial_filter = TRIAL_FILTER
    if parent_run_id is None and sweeps and not all_sweeps:  # the newest sweep's: MLflow need not read the others
        parent_run_id = sweeps[-1].info.run_id
    if parent_run_id is not None:
        trial_filter += f" and tags.`{tags.PARENT}` = '{parent_run_id}'"
    trials = search_all_runs(client, experiment.experiment_id, trial_filter, uri)
    knobs = knob_fields(trials)
    rows = [run_row(r, search_by_parent, knobs) for r in trials]
    rows.sort(key=lambda r: (r["start_time"] or 0, r["run_id"]))
    return to_table(rows, experiment_name, knobs)


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
