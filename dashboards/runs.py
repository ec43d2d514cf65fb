"""The runs table: its columns (declared once, in `vocab`), how to load it, and which runs compete.

One row per trial. `tokensweep export` writes `runs_schema(knobs)`: vocab's run fields, params,
metrics and tags in vocab's order, an embedding's knob params (which vocab does not declare) right
after `backbone`, then any metric vocab does not declare. Every column carries its kind in the
field metadata (`kind`: run | param | epoch | final | tag, or `metric` for an undeclared one), so
the dashboards tell a plugin's knob from a metric without knowing its name. The dashboards need
only `run_id`, `run_name`, `status` and the objective columns; every other column is optional.
"""

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

import vocab
from vocab.values import is_number
from dashboards.errors import InputError

TIMESTAMP = pa.timestamp("ms", tz="UTC")
ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "time": TIMESTAMP}
KIND = b"kind"  # field metadata key
EXTRA_METRIC = "metric"  # the kind of a metric column vocab does not declare
METRIC_KINDS = (vocab.EPOCH, vocab.FINAL, EXTRA_METRIC)
KNOBS_AFTER = "backbone"  # knob params follow this column
REQUIRED_COLUMNS = ("run_id", "run_name", "status")
EXPERIMENT_METADATA_KEY = b"tokensweep.experiment"
MODEL_NAME = re.compile(r"^vit_([a-z0-9]+)_")  # vit_<backbone>_<embedding>


def _one_per_name() -> tuple[vocab.Field, ...]:
    """vocab's fields, one per column name: a name declared twice keeps its first declaration.

    `lr` is both a param (the peak rate) and an epoch metric (the schedule's value at an epoch's
    end, ~0 after a cosine decay): the column holds the param.
    """
    first: dict[str, vocab.Field] = {}
    for f in vocab.FIELDS:
        first.setdefault(f.name, f)
    return tuple(first.values())


COLUMN_FIELDS = _one_per_name()
PARAM_NAMES = tuple(f.name for f in COLUMN_FIELDS if f.kind == vocab.PARAM)
METRIC_NAMES = tuple(f.name for f in COLUMN_FIELDS if f.kind in METRIC_KINDS)


def arrow_field(f: vocab.Field) -> pa.Field:
    return pa.field(f.name, ARROW_TYPES[f.type], metadata={KIND: f.kind.encode()})


def knob_field(name: str, kind: pa.DataType) -> pa.Field:
    """A param vocab does not declare (an embedding's knob, e.g. `cluster_iters`, a plugin's `kernel`)."""
    return pa.field(name, kind, metadata={KIND: vocab.PARAM.encode()})


def extra_metric_field(name: str) -> pa.Field:
    return pa.field(name, pa.float64(), metadata={KIND: EXTRA_METRIC.encode()})


def runs_schema(knobs: Sequence[pa.Field] = (), extra_metrics: Sequence[str] = ()) -> pa.Schema:
    """The export's columns: vocab's in its order, `knobs` after `backbone`, then undeclared metrics."""
    fields = []
    for f in COLUMN_FIELDS:
        fields.append(arrow_field(f))
        if f.name == KNOBS_AFTER:
            fields += knobs
    return pa.schema(fields + [extra_metric_field(name) for name in extra_metrics])


RUNS_SCHEMA = runs_schema()


def column_kind(f: pa.Field) -> str | None:
    """A column's kind: from its metadata, else from vocab's declaration of its name, else None."""
    marked = (f.metadata or {}).get(KIND)
    if marked:
        return marked.decode()
    declared = vocab.field(f.name)
    return declared.kind if declared else None


def param_columns(schema: pa.Schema) -> list[str]:
    """vocab's params and every column marked kind=param (an embedding's knobs), in column order."""
    return [f.name for f in schema if f.name in vocab.PARAMS or column_kind(f) == vocab.PARAM]


# vocab's metric declarations by name (looked up per table cell: a dict, not a scan of vocab.FIELDS)
METRIC_FIELDS = {f.name: f for f in vocab.of_kind(vocab.EPOCH, vocab.FINAL)}


def label(metric: str) -> str:
    """What a person reads on an axis: vocab's label, or the column name when vocab has none."""
    declared = METRIC_FIELDS.get(metric) or vocab.field(metric)
    return declared.label if declared else metric


def unit(metric: str) -> str:
    declared = METRIC_FIELDS.get(metric)
    return declared.unit if declared else ""


def default_direction(metric: str) -> str:
    """vocab's direction of a metric ("max" when it declares none)."""
    declared = METRIC_FIELDS.get(metric)
    return (declared.better if declared else None) or "max"


def backbone(run: dict) -> str | None:
    """The run's backbone (tiny | ti | s | b): its `backbone` param, else from the model name vit_<backbone>_<embedding>."""
    if run.get("backbone"):
        return run["backbone"]
    match = MODEL_NAME.match(run.get("model") or "")
    return match.group(1) if match else None


@dataclass(frozen=True)
class Objective:
    """One axis of the front: a metric column and whether bigger is better."""

    metric: str
    maximize: bool = True

    @property
    def direction(self) -> str:
        return "max" if self.maximize else "min"

    @classmethod
    def parse(cls, metric: str, direction: str | None = None) -> "Objective":
        """`direction` None: vocab's direction of the metric."""
        direction = direction or default_direction(metric)
        if direction not in ("max", "min"):
            raise InputError(f"objective direction for {metric!r} must be 'max' or 'min', got {direction!r}")
        return cls(metric, direction == "max")


def load_runs(source: "pa.Table | str | os.PathLike") -> pa.Table:
    """A runs table from a pyarrow Table or a Parquet file, checked for the required columns."""
    if isinstance(source, pa.Table):
        table = source
    else:
        table = _read_parquet(Path(source))
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(
            f"runs table lacks column(s) {', '.join(missing)}; it needs {', '.join(REQUIRED_COLUMNS)} "
            "(write one with `tokensweep export`)"
        )
    return table


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InputError(f"runs file {str(path)!r} does not exist (write one with `tokensweep export`)")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"runs file {str(path)!r} is not a readable Parquet file: {err}") from None


def experiment_name(table: pa.Table) -> str | None:
    """The experiment `tokensweep export` recorded in the table's metadata, if any."""
    metadata = table.schema.metadata or {}
    value = metadata.get(EXPERIMENT_METADATA_KEY)
    return value.decode() if value else None


def metric_columns(table: pa.Table) -> list[str]:
    """Numeric columns that can be an objective: metrics, not params (`seed`) nor tags (`threads`)."""
    return [
        f.name
        for f in table.schema
        if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)) and column_kind(f) in (*METRIC_KINDS, None)
    ]


def check_objective(table: pa.Table, objective: Objective) -> None:
    available = metric_columns(table)
    if objective.metric not in available:
        raise InputError(
            f"unknown objective metric {objective.metric!r}; available metrics: {', '.join(available) or '(none)'}"
        )


def sorted_rows(table: pa.Table) -> list[dict]:
    """The runs as dicts, in a deterministic order: start time, then run id."""
    rows = table.to_pylist()
    return sorted(rows, key=lambda r: (r.get("start_time") is None, r.get("start_time") or 0, r["run_id"]))


def exclusion_reason(row: dict, metrics: list[str]) -> str | None:
    """Why a run cannot be on the front ("failed", "running", "missing top1"), or None if it can.

    Only FINISHED runs compete: a RUNNING run's metrics are provisional, a FAILED or KILLED one's
    are not the configuration's result.
    """
    status = (row.get("status") or "UNKNOWN").upper()
    if status != "FINISHED":
        return status.lower()
    missing = [m for m in metrics if not is_number(row.get(m))]
    if missing:
        return "missing " + ", ".join(missing)
    return None
