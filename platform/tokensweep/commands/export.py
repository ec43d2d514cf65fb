"""`tokensweep export`: a sweep's trial runs from MLflow into one typed Parquet file."""

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a sweep's runs from MLflow to a Parquet file",
        description="Write one row per trial run of EXPERIMENT (params typed, final metrics, device and "
        "precision tags, status) to a Parquet file; docs/dashboard.md lists the columns.",
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


def run(args: argparse.Namespace) -> int:
    from tokensweep.tracking.export import runs_table, write_parquet

    table = runs_table(args.experiment, args.tracking_uri, args.all_sweeps)
    path = write_parquet(table, args.out)
    print(f"wrote {table.num_rows} runs x {table.num_columns} columns of {args.experiment!r} to {path}")
    return 0
