"""`tokensweep run SPEC.toml`: validate a sweep spec, then run it on Ray Tune with MLflow tracking.

Everything the user typed is checked before Ray, MLflow or Optuna is imported: a bad spec or flag
is one line on stderr and exit code 2, with nothing written to the tracking store or Tune storage.
"""

import argparse
import dataclasses
import os
import shlex
import sys
import time
from pathlib import Path

from tokensweep.errors import SpecError
from tokensweep.plan import largest
from tokensweep.plugins import add_plugin_flag

MLFLOW_UI_PORT = 5000  # `mlflow ui`'s default: the link the summary prints assumes it


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a sweep spec (platform/sweeps/*.toml) on Ray Tune, tracked in MLflow",
        description=(
            "Validate SPEC (and --set overrides), then run its trials on Ray Tune: a local Ray by "
            "default, a cluster with --address. Every trial is an MLflow child run under one parent "
            "run per sweep; --resume continues an interrupted sweep without re-running finished trials."
        ),
    )
    p.add_argument("spec", help="sweep spec TOML file, e.g. platform/sweeps/smoke.toml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, value parsed as TOML (repeatable): --set trial.epochs=2 --set search.num_samples=4",
    )
    p.add_argument("--data-dir", help="data set root (ImageFolder with train/ and val/): the spec's data set, an "
                   "ImageFolder where it names none; default [trial] data_dir, else $TOKENSWEEP_DATA")  # fmt: skip
    p.add_argument(
        "--address",
        help="Ray cluster: 'auto' (the running one), host:port, ray://host:10001, or 'local' (start a new "
        "local Ray). Default: $RAY_ADDRESS if set (as inside `ray job submit`), else local. With --dry-run, "
        "the plan's slots are the cluster's",
    )
    p.add_argument("--storage", default=None, help="Tune storage root, a path or s3://... (default ./ray_results)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)",
    )
    p.add_argument(
        "--optuna-storage",
        help="Optuna RDB URL for [search] sweeps (default sqlite:///<dir of mlflow.db, or cwd>/optuna.db)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the sweep of the same name from its Tune state")
    group.add_argument("--fresh", action="store_true", help="delete the same-named sweep's Tune state (and Optuna study) and start over")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a new local Ray (default: all)")
    p.add_argument("--num-gpus", type=int, default=None,
                   help="GPUs of a new local Ray (default: those Ray finds); Ray schedules by this count alone, so "
                   "on a machine without CUDA the trials run on the CPU: a dry run of GPU scheduling")  # fmt: skip
    p.add_argument("--smoke", action="store_true",
                   help="shrink the spec to the smoke preset: tiny backbone, a few epochs, 1 CPU per trial, 3 Optuna "
                   "trials (what CI runs for every shipped spec); generated data unless a data path is given; "
                   "--set still applies")  # fmt: skip
    p.add_argument("--calibration", metavar="FILE",
                   help="the plan's speeds from FILE (written by `tokensweep plan --save-calibration` on the trials' device)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true",
                   help="validate and list the trials, the data they read, their epochs and recipe; start nothing")  # fmt: skip
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="print nothing but the summary at the end")
    talk.add_argument("-v", "--verbose", action="count", default=0,
                      help="Ray Tune's own tables and the trials' log lines instead of the compact view "
                      "(-vv: every epoch's result table)")  # fmt: skip
    add_plugin_flag(p)
    p.set_defaults(func=run)


def choose_ray_auth(address: str | None, environ=None) -> None:
    """Set RAY_AUTH_MODE (and loopback-only ports) deliberately for a new local Ray; call before Ray is imported.

    Ray >= 2.59 turns token authentication on for a new local cluster when RAY_AUTH_MODE is unset
    (generating ~/.ray/auth_token), and reads the variable once, at import. We keep token auth and
    set it explicitly, so trials, `ray job submit` and `ray status` in this environment agree.

    A new local Ray also listens on the machine's network address by default (GCS, raylet, and
    unauthenticated Prometheus metrics endpoints on 0.0.0.0); RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is
    Ray's single-machine mode, which binds all of them to 127.0.0.1 - nothing else joins the Ray that
    `tokensweep run` starts for itself. Values the user set win (set it to 1 to listen on the network);
    connecting to an existing cluster (--address, $RAY_ADDRESS) follows that cluster's settings.
    """
    environ = os.environ if environ is None else environ
    if (address or environ.get("RAY_ADDRESS") or "local") in ("local", "none"):
        environ.setdefault("RAY_AUTH_MODE", "token")
        environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def quiet_ray(verbose: int, environ=None) -> None:
    """Before Ray is imported: Ray's own output that the compact view (and -q) replaces; the user's values win.

    RAY_LOG_TO_DRIVER=0: the trials' workers' stdout/stderr are not copied to this terminal
    ("(train_trial pid=...)" lines; Ray reads it once, as ray.init's log_to_driver default). They stay
    in Ray's session logs, and the view prints a failed trial's reason. RAY_AIR_NEW_OUTPUT=0: Tune's
    older output engine, silent at verbose=0; the newer one prints its "Configuration for experiment"
    box and "View detailed results here" even then. TUNE_PRINT_ALL_TRIAL_ERRORS=0: no Ray traceback
    (~40 lines) per failed trial; the view's one line names the root cause and the file that keeps the
    traceback. -v keeps all three as Ray has them.
    """
    if verbose > 0:
        return
    environ = os.environ if environ is None else environ
    environ.setdefault("RAY_LOG_TO_DRIVER", "0")
    environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")


def check_tracking(uri: str, ask_server: bool = True) -> None:
    from tokensweep.tracking.store import sqlite_path, tracking_uri_problem

    problem = tracking_uri_problem(uri, ask_server=ask_server)
    if problem is not None:
        raise SpecError(problem)
    db = sqlite_path(uri)
    if db is not None and db != ":memory:":
        from tokensweep.tracking.store import check_sqlite_store

        check_sqlite_store(db)  # not a database, or not writable: one line before Ray


def resolve_storage(storage: str | None) -> str:
    if storage is None:
        return str(Path("ray_results").resolve())
    if "://" in storage:
        return storage.rstrip("/")
    path = Path(storage).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise SpecError(f"--storage {storage!r} is a file, not a directory")
    return str(path)


def command_line(args) -> str:
    parts = ["tokensweep", "run", args.spec]
    for item in args.overrides:
        parts += ["--set", item]
    for flag in ("data_dir", "address", "storage", "tracking_uri", "optuna_storage", "num_cpus", "num_gpus", "calibration"):
        value = getattr(args, flag)
        if value is not None:
            parts += ["--" + flag.replace("_", "-"), str(value)]
    for module in args.plugin:
        parts += ["--plugin", module]
    for flag in ("resume", "fresh", "smoke"):
        if getattr(args, flag):
            parts.append("--" + flag)
    # logged as the parent run's tokensweep.command tag: no password of a URI (--tracking-uri, --storage,
    # --optuna-storage, a --set value) goes to MLflow
    from tokensweep.tracking.store import redact

    return redact(" ".join(shlex.quote(p) for p in parts))


def check_data(spec) -> None:
    """Every ImageFolder root the sweep's trials read: class folders present and not empty, readable,
    and every trial's train split holding a full batch.

    Before Ray starts, so that a data set without images is one line and exit 2, not a sweep of failed
    trials; cheap (file names are listed, as a trial will; nothing is decoded). Folder loops are noted
    on stderr. Files that do not decode are the trials' business (bad_images = "fail" | "skip").
    """
    from trials.config import require_full_batch

    batches: dict[tuple[str, str], int] = {}  # (dataset, root) -> the largest batch_size of its trials
    for config in _data_configs(spec):
        if config.dataset == "tiny":
            require_full_batch(config.tiny_classes * config.tiny_train_per_class, config.batch_size, "the generated train split")
        else:
            key = (config.dataset, config.data_dir)
            batches[key] = max(batches.get(key, 1), config.batch_size)
    if not batches:
        return  # generated data only: nothing to list, and no reason to load torch (trials.data) here
    from trials.data.loaders import check_data_root
    from trials.errors import ConfigError

    for (dataset, root), batch_size in sorted(batches.items()):
        try:
            check_data_root(dataset, root, batch_size)
        except ConfigError as err:
            raise SpecError(f"data path {root}: {err}") from None


def _data_configs(spec):
    """The trial configs whose data must fit: every grid trial's; a search's with its largest batch_size."""
    if spec.search == "grid":
        return [v.config for v in spec.variants]
    from trials import TrialConfig

    config = TrialConfig.from_dict(spec.base)
    for p in spec.params:
        if p.key == "batch_size":
            config = config.replace(batch_size=int(largest(p)))
    return [config]


def print_plan(spec) -> None:
    smoke = ", smoke" if spec.smoke else ""
    print(f"sweep {spec.name!r}: {spec.search}{smoke}, {spec.num_trials} trial(s), {spec.cpus:g} CPU(s) per trial")
    if spec.search == "grid":
        for v in spec.variants:
            print(f"  {v.name}")
    else:
        objectives = ", ".join(f"{m} ({mode})" for m, mode in spec.objectives)
        print(f"  optuna over {', '.join(p.key for p in spec.params)}; objectives: {objectives}")
    for line in data_lines(spec):
        print(f"data: {line}")


def data_lines(spec) -> list[str]:
    """What the trials read and how long they train, once per distinct line (grid trials may differ); each
    data set described once (a folder's files are listed)."""
    from trials import TrialConfig
    from trials.data.describe import data_inputs, data_line, describe_data

    configs = [v.config for v in spec.variants] or [TrialConfig.from_dict(spec.base)]
    described = {}
    for c in configs:
        if data_inputs(c) not in described:
            described[data_inputs(c)] = describe_data(c)
    return list(dict.fromkeys(data_line(c, described[data_inputs(c)]) for c in configs))


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from tokensweep.spec import load_spec
    from tokensweep.tracking.store import resolve_tracking_uri

    spec = load_spec(args.spec, args.overrides, data_dir=args.data_dir, smoke=args.smoke, plugins=args.plugin)
    for note in () if args.quiet else spec.notes:  # -q: nothing but errors before the summary
        print(f"tokensweep run: note: {note}", file=sys.stderr)
    check_data(spec)
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    check_tracking(tracking_uri, ask_server=False)
    storage = resolve_storage(args.storage)
    if args.num_cpus is not None and args.num_cpus < 1:
        raise SpecError(f"--num-cpus must be >= 1, got {args.num_cpus}")
    if args.num_gpus is not None and args.num_gpus < 0:
        raise SpecError(f"--num-gpus must be >= 0, got {args.num_gpus}")
    from tokensweep.sweep import RunOptions, check_local_resources

    verbose = min(2, args.verbose)
    options = RunOptions(
        tracking_uri=tracking_uri,
        storage=storage,
        address=args.address,
        optuna_storage=args.optuna_storage,
        resume=args.resume,
        fresh=args.fresh,
        command=command_line(args),
        verbose=verbose,
        quiet=args.quiet,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
    )
    if not args.dry_run:  # a dry run shows a spec written for a larger node; a run would wait forever
        check_local_resources(spec, options)
    plan = cost_plan(spec, args, tracking_uri)
    if args.dry_run:
        print_plan(spec)
        print("\n".join(plan.lines() if plan is not None else []))
        return 0
    check_tracking(tracking_uri)  # a server is asked once the spec is known good: a few seconds at most

    validated = time.perf_counter()
    choose_ray_auth(args.address)
    quiet_ray(verbose)
    from tokensweep.sweep import progress
    from tokensweep.sweep.driver import run_sweep  # Ray and MLflow from here on

    progress.quiet_loggers(verbose)

    imported = time.perf_counter()

    options = dataclasses.replace(options, plan=plan)
    outcome = run_sweep(spec, options, {"validate_s": validated - started, "import_s": imported - validated})
    outcome.timings["total_s"] = time.perf_counter() - started
    if outcome.interrupted:
        print(interrupted_line(spec, outcome, options.command), file=sys.stderr, flush=True)
    else:
        print_outcome(spec, outcome, tracking_uri, reasons=args.quiet)
    return outcome.exit_code


def cost_plan(spec, args, tracking_uri: str):
    """The sweep's plan (tokensweep.plan) on the resources of the Ray it will start (a dry run with --address:
    the cluster's), speeds from earlier runs in the sweep's store where nothing else has them; one the budget
    refuses is one line before Ray. Without a budget, a plan that cannot be made (no device to calibrate on,
    data the calibration cannot read) is a note: the trials will say what is wrong with their data."""
    from tokensweep.commands.plan import plan_resources
    from tokensweep.errors import USER_ERRORS
    from tokensweep.plan import plan_sweep, read_calibration_file
    from tokensweep.tracking.history import RunHistory

    entries = read_calibration_file(args.calibration) if args.calibration else []
    address = args.address if args.dry_run else None  # a sweep joins its cluster once, after the plan
    try:
        resources = plan_resources(address, args.num_gpus, args.num_cpus)
        plan, _ = plan_sweep(spec, resources, entries, RunHistory(tracking_uri))
    except USER_ERRORS as err:
        if spec.budget_hours is not None:
            raise SpecError(f"sweep.budget_hours needs a plan: {err}") from None
        if not args.quiet:
            print(f"tokensweep run: note: no cost plan: {err}", file=sys.stderr)
        return None
    if spec.budget_hours is not None and not args.resume and plan.device_hours > spec.budget_hours:
        raise SpecError(f"the plan needs {plan.device_hours:.3g} device-hours, over sweep.budget_hours = "
                        f"{spec.budget_hours:g}: raise the budget or shrink the sweep (tokensweep plan {spec.source})")  # fmt: skip
    return plan


def interrupted_line(spec, outcome, command: str) -> str:
    """One line for a sweep stopped by Ctrl-C or SIGTERM: what finished, what was interrupted, how to go on."""
    how = "interrupted" if outcome.interrupted == "SIGINT" else "terminated"
    finished = sum(1 for t in outcome.trials if t.status == "TERMINATED")
    failed = sum(1 for t in outcome.trials if t.status == "ERROR")
    stopped = ", ".join(f"{name} at epoch {epoch}" if epoch else f"{name} before its first epoch" for name, epoch in outcome.killed)
    parts = [f"{finished} of {spec.num_trials} trial(s) finished"]
    if failed:
        parts.append(f"{failed} failed")
    if outcome.killed:
        parts.append(f"{len(outcome.killed)} interrupted ({stopped}; KILLED in MLflow)")
    waiting = spec.num_trials - finished - failed - len(outcome.killed)
    if waiting > 0:
        parts.append(f"{waiting} not started")
    if outcome.resumable:
        from tokensweep.sweep.guards import resume_command

        then = f"`{resume_command(command)}` continues the sweep"
    else:
        then = "nothing was saved to resume from; run it again"
    return f"tokensweep run: {how} by {outcome.interrupted}: {', '.join(parts)}; {then}"


def _fmt(value, digits=2) -> str:
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return "-"


def print_outcome(spec, outcome, tracking_uri: str, reasons: bool) -> None:
    """The summary; `reasons`: a line per failed trial with its cause (-q: the progress view did not say it)."""
    rows = outcome.trials
    if not rows and outcome.exit_code:  # Tune's state could not be read (e.g. its storage is full)
        print(f"\nsweep {spec.name!r}: no trial results in Tune's state; MLflow parent run {outcome.parent_run_id}")
        print(f"Tune state: {outcome.tune_path}")
        sys.stdout.flush()
        return
    ok = sum(1 for t in rows if t.status == "TERMINATED")
    failed = sum(1 for t in rows if t.status == "ERROR")
    print(f"\nsweep {spec.name!r}: {len(rows)} trial(s), {ok} finished, {failed} failed; MLflow parent run {outcome.parent_run_id}")
    width = max([len(t.name) for t in rows] + [5])
    print(f"  {'trial':<{width}}  {'status':<10}  {'top1':>6}  {'images/s':>9}")
    for t in rows:
        print(f"  {t.name:<{width}}  {t.status:<10}  {_fmt(t.metrics.get('top1')):>6}  {_fmt(t.metrics.get('images_per_sec'), 0):>9}")
    for t in rows if reasons else ():
        if t.reason:
            print(f"  {t.name} failed: {t.reason[:300]}")
    t = outcome.timings
    phases = ("validate_s", "import_s", "ray_start_s", "mlflow_setup_s", "tune_s", "bench_s", "ray_shutdown_s")
    parts = [f"{k[:-2].replace('_', ' ')} {t[k]:.1f}s" for k in phases if k in t]
    print(f"time: {t.get('total_s', 0):.1f}s ({', '.join(parts)})")
    for line in compare_runs_lines(tracking_uri, outcome.experiment_id):
        print(line)
    print(f"Tune state: {outcome.tune_path}")
    if outcome.tracking_errors:
        print(f"warning: {outcome.tracking_errors} MLflow write(s) failed (see the log above); the runs may be incomplete")
    _print_stages(spec, outcome.stages)
    if outcome.budget_note:
        print(f"{outcome.budget_note}; `tokensweep run {spec.source} --resume --set sweep.budget_hours=HOURS` runs them")
    sys.stdout.flush()


def compare_runs_lines(tracking_uri: str, experiment_id: str | None) -> list[str]:
    """How to see the sweep's runs: a server's link, or for a sqlite store the `mlflow ui` command with the
    port its link assumes (another port: the same link on it)."""
    from tokensweep.tracking.tags import runs_url
    from tokensweep.tracking.store import redact, split_credentials

    if tracking_uri.startswith("sqlite:///"):
        lines = [f"compare runs: mlflow ui --backend-store-uri {tracking_uri} --port {MLFLOW_UI_PORT}"]
        if experiment_id:
            link = runs_url(f"http://127.0.0.1:{MLFLOW_UI_PORT}", experiment_id)
            lines.append(f"  then open {link} (with another --port, the same link on that port)")
        return lines
    if tracking_uri.startswith(("http://", "https://")) and experiment_id:
        return [f"compare runs: {runs_url(redact(split_credentials(tracking_uri)[0]), experiment_id)}"]
    return []


def _print_stages(spec, stages) -> None:
    """The bench stage in one line, then which differences the sweep resolved (tokensweep.sweep.progress)."""
    bench = stages.bench if stages is not None else None
    if bench is not None and bench.failed:
        print(f"bench: FAILED ({bench.reason}); the training results are kept. "
              f"Bench again: tokensweep run {spec.source} --resume, or tokensweep bench --sweep {spec.name}")  # fmt: skip
    elif bench is not None and bench.table:
        t = bench.table
        print(f"bench {t['bench_id']}: {len(t['rows'])} architecture(s) alone on {t['device']}, {t['threads']} thread(s), "
              f"{t['repeats']} repeats x {t['steps']} steps; table on the parent run: bench/{t['bench_id']}.csv")  # fmt: skip
    for line in stages.findings if stages is not None else ():
        print(line)
