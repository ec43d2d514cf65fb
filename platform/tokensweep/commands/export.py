"""`tokensweep export`: a sweep's trial runs from MLflow into one typed Parquet file, and its
configurations (seeds grouped by config_id, with means and intervals) into a file beside it named after
it (runs.parquet -> runs-configurations.parquet): two sweeps exported to one folder keep their own."""

import argparse
import sys
from pathlib import Path

CONFIGURATIONS_SUFFIX = "-configurations"


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a sweep's runs from MLflow to a Parquet file (and its configurations beside it)",
        description="Write one row per trial run of EXPERIMENT (params typed, an embedding's knobs included, "
        "final metrics, device and precision tags, status) to --out, and one row per configuration (its seeds' "
        "n, means, standard deviations and 95% intervals) to a file beside it named after it (runs.parquet -> "
        f"runs{CONFIGURATIONS_SUFFIX}.parquet); "
        "docs/dashboard.md lists the columns.",
    )
    p.add_argument("experiment", metavar="EXPERIMENT", help="the sweep's MLflow experiment (the sweep name)")
    p.add_argument("--out", default="runs.parquet", help="Parquet file to write (default: %(default)s)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this directory)",
    )
    p.add_argument(
        "--all-sweeps",
        action="store_true",
        help="include the trials of every sweep in the experiment (default: the newest sweep's only)",
    )
    p.set_defaults(func=run)


def configurations_path(out: str) -> Path:
    """Beside `out`, named after it: X.parquet -> X-configurations.parquet."""
    path = Path(out)
    return path.with_name(f"{path.stem}{CONFIGURATIONS_SUFFIX}{path.suffix or '.parquet'}")


def sweep_in(path: Path) -> str | None:
    """The sweep an earlier export wrote to `path` (its Parquet metadata), or None."""
    import pyarrow.parquet as pq

    from dashboards.runs import EXPERIMENT_METADATA_KEY

    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):  # no file, or not a Parquet file
        return None
    name = metadata.get(EXPERIMENT_METADATA_KEY)
    return name.decode(errors="replace") if name is not None else None


def run(args: argparse.Namespace) -> int:
    from dashboards.configurations import configurations_table
    from tokensweep.commands.report import with_bench_repeats
    from tokensweep.tracking.export import runs_table, write_parquet

    configs_path = configurations_path(args.out)
    table = with_bench_repeats(runs_table(args.experiment, args.tracking_uri, args.all_sweeps), args.tracking_uri)
    configs = configurations_table(table)
    for target in (Path(args.out), configs_path):
        held = sweep_in(target)
        if held not in (None, args.experiment):
            print(f"tokensweep export: note: replacing {target}, which held sweep {held!r}", file=sys.stderr)
    path = write_parquet(table, args.out)
    write_parquet(configs, configs_path)
    print(f"wrote {table.num_rows} runs x {table.num_columns} columns of {args.experiment!r} to {path}")
    print(f"wrote {configs.num_rows} configurations to {configs_path}")
    return 0
