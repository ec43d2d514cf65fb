"""`tokensweep report`: a sweep's configurations and every difference between them, with the 95%
interval of each difference and whether it is resolved, as Markdown, LaTeX or CSV.

Reads the runs for itself and for `tokensweep dashboard` (`read_runs`): from MLflow, with the
bench's per-repeat figures (the bench tables on the sweep's parent run) that the images/sec
differences are computed from, or from a Parquet file of `tokensweep export`, which carries them too.
"""

import argparse
import os
import sys
from pathlib import Path

import vocab


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="a sweep's configurations and every difference between them (Markdown, LaTeX, CSV)",
        description="Write EXPERIMENT's configurations (top-1 mean ± 95%% interval (n), images/sec with its interval, "
        "params, embedding params, FLOPs, device-hours summed over its seeds) and every pairwise difference of top-1 "
        "and images/sec, each with the 95%% interval of the difference and whether it is resolved (the interval "
        "excludes 0). Nothing is left out.",
    )
    add_runs_arguments(p)
    p.add_argument("--format", default="md", help="md (default), latex (a document) or csv (one row per difference)")
    p.add_argument("--out", metavar="FILE", help="write to FILE (default: print)")
    p.add_argument("--baseline", metavar="NAME", help="each configuration against this one, not every pair")
    p.add_argument("--adjust", default="none",
                   help="none (default: each interval at 95%%, unadjusted) or holm (Holm's adjustment over the "
                        "differences of each metric)")  # fmt: skip
    p.set_defaults(func=run)


def add_runs_arguments(p) -> None:
    """EXPERIMENT and where its runs come from: what `read_runs` reads (`tokensweep dashboard` too)."""
    p.add_argument("experiment", metavar="EXPERIMENT", help="the sweep's MLflow experiment (the sweep name)")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this directory)",
    )
    source.add_argument("--runs", metavar="PARQUET", help="read runs from this `tokensweep export` file (with the "
                        "bench's repeats, as MLflow gives them), not MLflow")  # fmt: skip
    p.add_argument("--all-sweeps", action="store_true",
                   help="include the trials of every sweep in the experiment (default: the newest sweep's only)")  # fmt: skip


def _read_json(client, run_id: str, path: str) -> dict | None:
    import json
    import tempfile

    folder, _, name = path.rpartition("/")
    if name not in {Path(f.path).name for f in client.list_artifacts(run_id, folder)}:
        return None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bar per small file
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(run_id, path, tmp)).read_text())


def bench_repeats(client, parent_run_id: str, bench_id: str) -> dict[str, list[float]]:
    """{run id: its architecture's per-repeat images/sec} in one bench of the sweep."""
    from tokensweep.sweep.bench import ARCHITECTURES, table_path

    architectures, table = _read_json(client, parent_run_id, ARCHITECTURES), _read_json(client, parent_run_id, table_path(bench_id))
    if architectures is None or table is None:
        return {}
    by_arch = {row["arch_id"]: row["repeat_images_per_sec"] for row in table["rows"]}
    return {run_id: by_arch[a["arch_id"]] for a in architectures["architectures"] if a["arch_id"] in by_arch
            for run_id in a["runs"]}  # fmt: skip


def with_bench_repeats(table, tracking_uri: str | None):
    """The runs table with vocab.BENCH_REPEATS: each benched run's per-repeat figures (null where unknown)."""
    import pyarrow as pa
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tokensweep.tracking.store import redact, resolve_tracking_uri

    rows = table.select(["run_id", "parent_run_id", "bench_id"]).to_pylist()
    benches = {(r["parent_run_id"], r["bench_id"]) for r in rows if r["parent_run_id"] and r["bench_id"]}
    uri = resolve_tracking_uri(tracking_uri)
    client, repeats = MlflowClient(tracking_uri=uri), {}
    try:
        for parent, bench_id in sorted(benches):
            repeats.update({(run_id, bench_id): v for run_id, v in bench_repeats(client, parent, bench_id).items()})
    except (MlflowException, OSError) as err:
        print(f"note: the bench's repeats were not read ({redact(str(err).splitlines()[0])}): images/sec differences "
              "have no interval", file=sys.stderr)  # fmt: skip
    column = pa.array([repeats.get((r["run_id"], r["bench_id"])) for r in rows], pa.list_(pa.float64()))
    return table.append_column(vocab.BENCH_REPEATS, column)


def read_runs(args: argparse.Namespace):
    """The runs of `tokensweep dashboard` and `report`: a Parquet export, or MLflow with the bench's repeats."""
    if args.runs:
        from dashboards.runs import load_runs

        return load_runs(args.runs)
    from tokensweep.tracking.export import runs_table

    return with_bench_repeats(runs_table(args.experiment, args.tracking_uri, args.all_sweeps), args.tracking_uri)


def run(args: argparse.Namespace) -> int:
    from vocab.atomic import write_text_atomic
    from dashboards.report import build_report, check_options, render

    check_options(args.format, args.adjust)  # before MLflow is read
    report = build_report(read_runs(args), args.experiment, args.baseline, args.adjust)
    text = render(report, args.format)
    if args.out:
        write_text_atomic(Path(args.out), text)
        print(f"wrote {len(report.configs)} configurations and {len(report.differences)} differences to {args.out}")
    else:
        sys.stdout.write(text)
    return 0
