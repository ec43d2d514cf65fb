"""The runs table: its columns, how to load it, and which runs can be compared.

One row per trial. `tokensweep export` writes it from MLflow with exactly `RUNS_SCHEMA` (plus any
extra metrics the trials logged, as float64 columns); the dashboards need only `run_id`,
`run_name`, `status` and the objective columns, and treat every other column as optional.
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from dashboards.errors import InputError

TIMESTAMP = pa.timestamp("ms", tz="UTC")

IDENTITY_COLUMNS = [
    ("run_id", pa.string()),
    ("run_name", pa.string()),
    ("trial_id", pa.string()),
    ("status", pa.string()),  # FINISHED | FAILED | RUNNING | KILLED | SCHEDULED
    ("start_time", TIMESTAMP),
    ("end_time", TIMESTAMP),
    ("parent_run_id", pa.string()),
]
PARAM_COLUMNS = [
    ("model", pa.string()),
    ("embedding", pa.string()),  # patch | conv | supertoken
    ("conv_depth", pa.int64()),
    ("extra_conv", pa.bool_()),
    ("cluster_iters", pa.int64()),
    ("channels", pa.string()),  # "16,32,32,64,64,64"
    ("mask_border", pa.bool_()),
    ("img_size", pa.int64()),
    ("epochs", pa.int64()),
    ("batch_size", pa.int64()),
    ("lr", pa.float64()),
    ("seed", pa.int64()),
    ("dataset", pa.string()),
    ("optuna_trial_number", pa.int64()),
]
METRIC_COLUMNS = [
    ("top1", pa.float64()),  # percent
    ("top5", pa.float64()),
    ("params", pa.float64()),
    ("embed_params", pa.float64()),
    ("flops", pa.float64()),  # per image
    ("images_per_sec", pa.float64()),  # inference
    ("train_images_per_sec", pa.float64()),
    ("peak_mem_mb", pa.float64()),  # GPU only
    ("joules_per_image", pa.float64()),  # GPU only
    ("train_loss", pa.float64()),  # last epoch
    ("val_loss", pa.float64()),
]
TAG_COLUMNS = [
    ("device", pa.string()),
    ("precision", pa.string()),  # fp32 | bf16 | fp16
    ("torch_version", pa.string()),
    ("gpu_shared", pa.bool_()),  # throughput measured while other trials shared the GPU
    ("failure_reason", pa.string()),
    ("sweep_search", pa.string()),  # the parent run's tokensweep.search tag, e.g. "optuna"
]
RUNS_SCHEMA = pa.schema(IDENTITY_COLUMNS + PARAM_COLUMNS + METRIC_COLUMNS + TAG_COLUMNS)
REQUIRED_COLUMNS = ("run_id", "run_name", "status")
PARAM_NAMES = [name for name, _ in PARAM_COLUMNS]
EXPERIMENT_METADATA_KEY = b"tokensweep.experiment"


@dataclass(frozen=True)
class Objective:
    """One axis of the front: a metric column and whether bigger is better."""

    metric: str
    maximize: bool = True

    @property
    def direction(self) -> str:
        return "max" if self.maximize else "min"

    @classmethod
    def parse(cls, metric: str, direction: str) -> "Objective":
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
    """Numeric columns that can be an objective (parameters such as `seed` are not)."""
    numeric = [
        field.name
        for field in table.schema
        if pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
    ]
    return [name for name in numeric if name not in PARAM_NAMES]


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


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def exclusion_reason(row: dict, metrics: list[str]) -> str | None:
    """Why a run cannot be on the front ("failed", "running", "missing top1"), or None if it can.

    Only FINISHED runs compete: a RUNNING run's metrics are provisional, a FAILED or KILLED one's
    are not the configuration's result.
    """
    status = (row.get("status") or "UNKNOWN").upper()
    if status != "FINISHED":
        return status.lower()
    missing = [m for m in metrics if not finite(row.get(m))]
    if missing:
        return "missing " + ", ".join(missing)
    return None
