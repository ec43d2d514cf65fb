"""`tokensweep dashboard`: the Pareto-front page, static chart and front JSON of a sweep.

Reads the runs from MLflow (or a Parquet file from `tokensweep export`), writes the files into
--out, and logs them as artifacts of the sweep's parent run. `--serve` serves the folder on
loopback and rewrites the files every --interval seconds while the sweep runs.
"""

import argparse
import functools
import http.server
import sys
import threading
from http import HTTPStatus
from pathlib import Path

import vocab
from tokensweep.commands.report import add_runs_arguments, read_runs
from tokensweep.errors import USER_ERRORS


def metrics_help() -> str:
    """The objectives vocab declares, with their direction: what --x and --y accept (no Plotly loaded)."""
    names = [f"{f.name} ({f.better})" for f in vocab.of_kind(vocab.EPOCH, vocab.FINAL) if f.better]
    return ("METRIC is any metric column of the runs: " + ", ".join(dict.fromkeys(names))
            + ", or a metric the trials logged that vocab does not declare. Each --x-dir/--y-dir defaults to "
            "the direction in brackets. --x images_per_sec draws the bench stage's figure "
            "(bench_images_per_sec) when every run has one.")  # fmt: skip


def register(sub) -> None:
    p = sub.add_parser(
        "dashboard",
        help="draw a sweep's accuracy/throughput Pareto front (HTML, PNG, SVG, JSON)",
        description="Write pareto.html (self-contained, opens offline), pareto.png, pareto.svg and pareto.json "
        "for EXPERIMENT into --out, and log them to the sweep's parent MLflow run.",
        epilog=metrics_help(),
    )
    add_runs_arguments(p)
    p.add_argument("--out", help="output folder (default: dashboard/EXPERIMENT)")
    p.add_argument("--x", default="images_per_sec", metavar="METRIC", help="x objective (default: %(default)s)")
    p.add_argument("--x-dir", choices=("max", "min"), help="maximise or minimise x (default: the metric's direction)")
    p.add_argument("--x-scale", default="auto", choices=("auto", "log", "linear"), help="x axis (default: auto)")
    p.add_argument("--y", default="top1", metavar="METRIC", help="y objective (default: %(default)s)")
    p.add_argument("--y-dir", choices=("max", "min"), help="maximise or minimise y (default: the metric's direction)")
    p.add_argument("--paper", action="store_true",
                   help="draw the paper's marks and tables even when the sweep is not on ImageNet-100")  # fmt: skip
    p.add_argument("--no-log", action="store_true", help="do not log the files to the sweep's MLflow parent run")
    p.add_argument("--serve", action="store_true", help="serve --out over HTTP and keep it up to date")
    p.add_argument("--host", default="127.0.0.1", help="--serve address (default: %(default)s, loopback only)")
    p.add_argument("--port", type=int, default=8765, help="--serve port, 0 for any free one (default: %(default)s)")
    p.add_argument("--interval", type=int, default=30, help="--serve: seconds between refreshes (default: %(default)s)")
    p.set_defaults(func=run)


def out_dir(args: argparse.Namespace) -> Path:
    # Experiment names may hold '/': keep the folder one level deep.
    return Path(args.out) if args.out else Path("dashboard") / args.experiment.replace("/", "_")


def build(args: argparse.Namespace, refresh_seconds: int | None = None) -> dict[str, Path]:
    from dashboards.build import build_dashboard
    from dashboards.runs import Objective

    return build_dashboard(
        read_runs(args),
        out_dir(args),
        x=Objective.parse(args.x, args.x_dir),
        y=Objective.parse(args.y, args.y_dir),
        experiment=args.experiment,
        x_scale=args.x_scale,
        refresh_seconds=refresh_seconds,
        paper=args.paper,
    )


def log_to_sweep(args: argparse.Namespace, paths: dict[str, Path]) -> None:
    """Attach the files to the sweep's newest parent run, when the runs came from MLflow."""
    if args.no_log or args.runs:
        return
    from tokensweep.tracking.export import log_artifacts, sweep_run_id

    run_id = sweep_run_id(args.experiment, args.tracking_uri)
    if run_id is None:
        print(f"no sweep run (tag tokensweep.role=sweep) in {args.experiment!r}: files not logged to MLflow")
        return
    log_artifacts(run_id, list(paths.values()), args.tracking_uri)
    print(f"logged {len(paths)} files to run {run_id} (artifact folder 'dashboard')")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the dashboard folder without a log line per request; a path no file can have is a 400 and
    one line on stderr (the base class lets open()'s ValueError escape: no answer, a traceback)."""

    def send_head(self):
        try:
            return super().send_head()
        except ValueError as err:  # a NUL byte, or a name the file system cannot encode, in the path
            print(f"dashboard server: 400 for {self.path[:200]!r}: {err}", file=sys.stderr, flush=True)
            self.send_error(HTTPStatus.BAD_REQUEST, "no file can have this path")
            return None

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def start_server(directory: Path, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """An HTTP server for `directory` on a background thread; .shutdown() stops it."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        from dashboards.errors import InputError

        raise InputError(f"cannot serve on {host}:{port}: {err.strerror or err}") from None
    threading.Thread(target=server.serve_forever, name="dashboard-http", daemon=True).start()
    return server


def serve(args: argparse.Namespace, stop: threading.Event | None = None) -> None:
    """Serve --out and rebuild every --interval s until Ctrl-C (or `stop` is set, for tests)."""
    stop = stop or threading.Event()
    directory = out_dir(args)
    server = start_server(directory, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving http://{host}:{port}/pareto.html (refreshed every {args.interval} s; Ctrl-C to stop)", flush=True)
    try:
        while not stop.wait(args.interval):
            try:
                build(args, refresh_seconds=args.interval)
            except (*USER_ERRORS, OSError) as err:  # MLflow briefly unreachable, say: keep the last good page
                print(f"refresh failed, serving the previous files: {err}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


def run(args: argparse.Namespace) -> int:
    if args.interval < 1:
        from dashboards.errors import InputError

        raise InputError(f"--interval must be at least 1 second, got {args.interval}")
    paths = build(args, refresh_seconds=args.interval if args.serve else None)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    if args.serve:
        serve(args)
        paths = build(args)  # the logged page must not keep reloading itself
    log_to_sweep(args, paths)
    return 0
