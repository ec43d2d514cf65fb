"""`tokensweep bench`: inference and training images/sec of named models, one CSV row each (the vocabulary's names);
`tokensweep bench --sweep NAME`: a new bench of a sweep's architectures, recorded on its MLflow runs."""

import argparse
import csv
import io
import sys

from tokensweep.errors import SpecError
from tokensweep.plugins import add_plugin_flag
from tokensweep.spec.model import BENCH_REPEATS, BENCH_STEPS

DEFAULT_MODELS = ("vit_s_patch", "vit_s_conv", "vit_s_supertoken")
# the names MLflow, export and the dashboards use (vocab): a bench row reads like a trial's final metrics
COLUMNS = (
    "model", "embedding", "img_size", "batch_size", "params", "embed_params", "flops",
    "images_per_sec", "infer_step_ms", "infer_spread",
    "train_images_per_sec", "train_step_ms", "train_spread",
    "peak_mem_mb", "joules_per_image",
    "device", "device_type", "precision", "torch_version", "threads",
)  # fmt: skip


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="throughput of named models (CSV)",
        description="Measure inference and training images/sec (warm-up, device sync, median of timed steps) "
        "on a fixed synthetic batch; one CSV row per model, with the environment of every figure.",
        epilog="example: tokensweep bench vit_s_patch vit_s_supertoken --batch 32 --threads 2",
    )
    from trials import list_models

    p.add_argument("models", nargs="*", default=[],
                   help=f"registered models: {', '.join(list_models())} (default: {' '.join(DEFAULT_MODELS)})")  # fmt: skip
    p.add_argument("--sweep", metavar="NAME",
                   help="bench every architecture of sweep NAME alone, side by side, in this process (e.g. later, on "
                   "another GPU); a new bench_id on its MLflow runs, beside the earlier benches")  # fmt: skip
    p.add_argument("--tracking-uri", help="with --sweep: MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"with --sweep: repeats of the interleaved measurement (default {BENCH_REPEATS}; the figure is their median)")  # fmt: skip
    p.add_argument("--batch", type=int, default=None, help="images per step (default 64; with --sweep the trials' bench_batch)")
    p.add_argument("--img-size", type=int, default=None, help="default: each model's own (224 for vit_s_*)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"), help="auto: bf16 on CUDA")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's; with --sweep the trials')")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=None,
                   help=f"timed steps; the median is reported (default 10; with --sweep {BENCH_STEPS} per repeat)")  # fmt: skip
    p.add_argument("--no-train", action="store_true", help="inference only")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model override for every model, e.g. cluster_iters=2 (repeatable)")  # fmt: skip
    p.add_argument("--out", metavar="FILE.csv", help="write the CSV here (atomically) instead of stdout")
    add_plugin_flag(p)
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    from tokensweep.spec.source import parse_value

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set expects KEY=VALUE (e.g. cluster_iters=2), got {item!r}")
        out[key.strip()] = parse_value(text)
    return out


def check_args(args) -> None:
    for name in ("batch", "warmup", "steps", "threads", "repeats"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            raise SpecError(f"--{name} must be a positive integer, got {value}")


def bench_rows(args) -> list[dict]:
    from trials import create_model, resolve_model
    from trials.measure import measure_speed, model_counts, resolve_device, resolve_precision

    overrides = parse_overrides(args.overrides)
    if args.img_size is not None:
        overrides["img_size"] = args.img_size
    specs = {name: resolve_model(name, **overrides) for name in args.models}  # all names checked up front
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    rows = []
    for i, (name, spec) in enumerate(specs.items(), 1):
        progress(i, len(specs), name, f"building ({spec.img_size} px)")
        model = create_model(name, **overrides).to(device)
        phases = "inference" if args.no_train else "inference, then training"
        progress(i, len(specs), name, f"timing {phases}: {args.warmup} warm-up + {args.steps} timed steps of batch {args.batch} each")
        row = measure_speed(
            model, spec.img_size, args.batch, device, precision, args.threads, args.warmup, args.steps, not args.no_train
        )
        progress(i, len(specs), name, "counting FLOPs")
        row.update(model_counts(model, spec.img_size, device), model=name, embedding=spec.embedding, img_size=spec.img_size)
        row.update({f"{kind}_step_ms": row[f"{kind}_step_s"] * 1e3 for kind in ("infer", "train") if f"{kind}_step_s" in row})
        rows.append(row)
        train = f", {row['train_images_per_sec']:.1f} img/s training" if row.get("train_images_per_sec") else ""
        progress(i, len(specs), name, f"{row['images_per_sec']:.1f} img/s inference{train}")
    return rows


def progress(i: int, n: int, name: str, what: str) -> None:
    """One line per model and phase on stderr (the CSV may be on stdout): a long bench shows where it is."""
    print(f"bench [{i}/{n}] {name}: {what}", file=sys.stderr, flush=True)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    check_args(args)
    if args.sweep is not None:
        return bench_sweep(args)
    for flag in ("repeats", "tracking_uri"):
        if getattr(args, flag) is not None:
            raise SpecError(f"--{flag.replace('_', '-')} applies with --sweep NAME only")
    args.models = args.models or list(DEFAULT_MODELS)
    args.batch = args.batch or 64
    args.steps = args.steps or 10
    text = to_csv(bench_rows(args))
    if args.out:
        from vocab.atomic import write_text_atomic

        write_text_atomic(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def check_existing_store(uri: str) -> None:
    """A store that can be read: a valid URI, an existing sqlite file (MLflow would create an empty one), a server
    that answers; else one line."""
    from tokensweep.tracking.store import tracking_uri_problem

    problem = tracking_uri_problem(uri, existing=True)
    if problem is not None:
        raise SpecError(problem)


def bench_sweep(args: argparse.Namespace) -> int:
    """--sweep NAME: the sweep's bench stage, on demand, in this process (tokensweep.sweep.bench)."""
    from tokensweep.tracking.store import resolve_tracking_uri

    if args.models:
        raise SpecError(f"--sweep benches the sweep's own architectures; drop the model names ({' '.join(args.models)})")
    for flag, name in (("img_size", "--img-size"), ("overrides", "--set"), ("no_train", "--no-train")):
        if getattr(args, flag):
            raise SpecError(f"{name} does not apply with --sweep (the sweep's architectures are benched as they trained)")
    if args.precision != "auto":
        raise SpecError("--precision does not apply with --sweep (each architecture runs in the precision it trained in)")
    uri = resolve_tracking_uri(args.tracking_uri)
    check_existing_store(uri)
    settings = {"device": args.device, "batch": args.batch, "threads": args.threads,
                "repeats": args.repeats or BENCH_REPEATS, "steps": args.steps or BENCH_STEPS}  # fmt: skip
    from tokensweep.sweep.bench import bench_sweep as bench
    from tokensweep.tracking.tracker import SweepTracker

    table = bench(SweepTracker(uri, args.sweep), settings, tuple(args.plugin))
    width = max(len(r["label"]) for r in table["rows"])
    print(f"bench {table['bench_id']} of sweep {args.sweep!r} on {table['device']}, {table['threads']} thread(s), "
          f"{table['repeats']} repeats x {table['steps']} steps (median, 95% interval of the median):")  # fmt: skip
    for r in table["rows"]:
        print(f"  {r['label']:<{width}}  {r['images_per_sec']:>10.1f} img/s  [{r['ci_low']:.1f}, {r['ci_high']:.1f}]")
    if args.out:
        from vocab.atomic import write_text_atomic
        from tokensweep.sweep.bench import to_csv as table_csv

        write_text_atomic(args.out, table_csv(table))
    return 0
