"""`tokensweep export`: a sweep's trial runs from MLflow into one typed Parquet file, and its
configurations (seeds grouped by config_id, with means and intervals) into configurations.parquet beside it."""

import argparse
from pathlib import Path

CONFIGURATIONS_FILE = "configurations.parquet"


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a sweep's runs from MLflow to a Parquet file (and its configurations beside it)",
        description="Write one row per trial run of EXPERIMENT (params typed, an embedding's knobs included, "
        "final metrics, device and precision tags, status) to --out, and one row per configuration (its seeds' "
        f"n, means, standard deviations and 95%% intervals) to {CONFIGURATIONS_FILE} in the same folder; "
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
    path = Path(out).with_name(CONFIGURATIONS_FILE)
    if path == Path(out):
        from dashboards.errors import InputError

        raise InputError(
            f"--out {out!r} is the name of the configurations file written beside it; name it e.g. runs.parquet"
        )
    return path


def run(args: argparse.Namespace) -> int:
    from dashboards.configurations import configurations_table
    from tokensweep.tracking.export import runs_table, write_parquet

    configs_path = configurations_path(args.out)
    table = runs_table(args.experiment, args.tracking_uri, args.all_sweeps)
    configs = configurations_table(table)
    path = write_parquet(table, args.out)
    write_parquet(configs, configs_path)
    print(f"wrote {table.num_rows} runs x {table.num_columns} columns of {args.experiment!r} to {path}")
    print(f"wrote {configs.num_rows} configurations to {configs_path}")
    return 0
