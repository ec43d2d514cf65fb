"""`tokensweep plan SPEC.toml`: what the sweep will cost, in device-hours and wall time, before it runs.

Starts nothing and writes no run: the spec is validated as `run` validates it, each distinct
architecture is calibrated (tokensweep.plan) or its speed read from earlier runs in the MLflow store,
and the plan is printed (`--json`: JSON alone on stdout). With --address, the slots are the running
cluster's (the only time Ray is imported).
"""

import argparse
import json
import sys

from tokensweep.errors import SpecError
from tokensweep.plugins import add_plugin_flag


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plan",
        help="what a sweep spec will cost: device-hours (GPU-hours or core-hours) and wall time, before it runs",
        description=(
            "Calibrate each distinct architecture of SPEC on the trials' device (timed training steps and "
            "the data loader's rate; cached), or take its speeds from --calibration FILE or, where this machine "
            "lacks the trials' device, from earlier runs of it in the MLflow store; then print every "
            "architecture's speed, the sweep's device-hours and its wall time on the slots the resources allow. "
            "Starts no Ray, writes no MLflow run."
        ),
    )
    p.add_argument("spec", help="sweep spec TOML file, e.g. platform/sweeps/smoke.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec value, value parsed as TOML (repeatable), as `run --set`")  # fmt: skip
    p.add_argument("--data-dir", help="data set root, as `run --data-dir`")
    p.add_argument("--smoke", action="store_true", help="the spec shrunk to the smoke preset, as `run --smoke`")
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs of the cluster the plan is for (default: --address's, else this machine's)")  # fmt: skip
    p.add_argument("--cpus", type=int, default=None,
                   help="CPUs of the cluster the plan is for (default: --address's, else this machine's)")  # fmt: skip
    p.add_argument("--address", help="a running Ray cluster ('auto', host:port, ray://host:10001) whose resources "
                   "set the slots; --gpus / --cpus win over it")  # fmt: skip
    p.add_argument("--tracking-uri", help="the MLflow store whose earlier runs give speeds where nothing else does "
                   "(read only; default $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db, as `run`)")  # fmt: skip
    p.add_argument("--calibration", metavar="FILE",
                   help="speeds measured on the trials' device elsewhere (written there by --save-calibration)")  # fmt: skip
    p.add_argument("--save-calibration", metavar="FILE", help="write the calibrations this plan used to FILE")
    p.add_argument("--json", action="store_true", help="print the plan as JSON alone on stdout (notes on stderr)")
    add_plugin_flag(p)
    p.set_defaults(func=run)


def check_resources(args) -> None:
    for flag, value, least in (("--gpus", args.gpus, 0), ("--cpus", args.cpus, 1)):
        if value is not None and value < least:
            raise SpecError(f"{flag} must be >= {least}, got {value}")


def plan_resources(address: str | None, gpus: int | None, cpus: int | None):
    """The slots' resources: --gpus / --cpus, else those of the running cluster at `address` (Ray is imported
    only then), else this machine's."""
    from tokensweep.plan import Resources

    if address in (None, "local", "none") or (gpus is not None and cpus is not None):
        return Resources(gpus=gpus, cpus=cpus)
    from tokensweep.sweep.guards import cluster_resources

    return Resources(gpus=gpus, cpus=cpus, cluster=cluster_resources(address), address=address)


def run(args: argparse.Namespace) -> int:
    from tokensweep.plan import calibration_file, plan_sweep, read_calibration_file
    from tokensweep.spec import load_spec
    from tokensweep.tracking.history import RunHistory
    from tokensweep.tracking.store import resolve_tracking_uri

    check_resources(args)
    spec = load_spec(args.spec, args.overrides, data_dir=args.data_dir, smoke=args.smoke, plugins=args.plugin)
    for note in spec.notes:
        print(f"tokensweep plan: note: {note}", file=sys.stderr)
    entries = read_calibration_file(args.calibration) if args.calibration else []
    history = RunHistory(resolve_tracking_uri(args.tracking_uri))
    plan, used = plan_sweep(spec, plan_resources(args.address, args.gpus, args.cpus), entries, history)
    if args.save_calibration:
        from vocab.atomic import write_text_atomic

        write_text_atomic(args.save_calibration, calibration_file(used))
        print(f"tokensweep plan: calibrations written to {args.save_calibration}", file=sys.stderr)
    if args.json:
        print(json.dumps(plan.to_json(), indent=1))
    else:
        print("\n".join(plan.lines()))
    return 0
