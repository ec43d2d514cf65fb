"""Validation: every section of a parsed spec checked, every trial built once with TrialConfig.from_dict."""

from __future__ import annotations

import os
from pathlib import Path

from trials.data.listing import SPLITS
from tokensweep.errors import SpecError
from tokensweep.spec.context import jsonable, suggest
from tokensweep.spec.context import SpecContext
from tokensweep.spec.grid import build_grid
from tokensweep.spec.model import DATA_ENV, NAME_RE, SECTIONS, SweepSpec, mode_of_metric, section_field, section_keys
from tokensweep.spec.search import build_search


def build_spec(ctx: SpecContext, data_dir_flag: str | None, environ, smoke: bool, shrunk: bool = False) -> SweepSpec:
    """`shrunk`: --smoke on a spec that does not declare smoke (its data kept only where a path is given)."""
    doc = ctx.doc
    for section in doc:
        if section not in SECTIONS:
            raise ctx.err(section, f"is not a known section{suggest(section, SECTIONS)}; known: {', '.join(SECTIONS)}")
    sweep = ctx.table("sweep")
    fields, max_trials = _sweep_section(ctx, sweep)
    fields.update(smoke=smoke, source=ctx.source, text=ctx.text, overrides=ctx.overrides)
    fields["plugins"] = load_plugins(ctx, sweep)

    has_grid, has_search = "grid" in doc or "variants" in doc, "search" in doc
    if has_grid and has_search:
        raise ctx.err("search", "a sweep has either [grid]/[[variants]] or [search], not both")
    if "seeds" in sweep and has_search:
        raise ctx.err("sweep.seeds", "applies to grid sweeps; an optuna search replicates its front with [search] confirm_seeds")

    base = dict(ctx.table("trial"))
    ctx.check_trial_keys("trial", base)
    base_where = {k: f"trial.{k}" for k in base}
    resolve_data(ctx, base, base_where, data_dir_flag, environ, shrunk)
    for section in ("resources", "failure", "tracking"):  # their keys are SweepSpec's fields
        fields.update(ctx.section(section))
    fields.update(_bench(ctx))
    platform_values = _platform_values(fields)
    if has_search:
        fields.update(build_search(ctx, base, base_where, platform_values))
        first = ctx.build_trial(fields["base"], base_where)
    else:
        fields.update(build_grid(ctx, base, base_where, platform_values, fields["seeds"], max_trials))
        first = fields["variants"][0].config
    configs = [v.config for v in fields.get("variants", ())] or [first]
    check_plugin_embeddings(configs)
    if first.device == "cuda" and fields["gpus"] == 0:
        raise ctx.err("resources.gpus", 'is 0, but trial.device = "cuda": give each trial a GPU (or device = "auto")')
    fields.update(build_scheduler(ctx, first.epochs, fields))
    fields["notes"] = (*fields.pop("grid_notes", ()), *first.notes())
    fields["resolved"] = jsonable(doc)
    return SweepSpec(**fields)


def check_plugin_embeddings(configs) -> None:
    """Build every user embedding once at each size the sweep uses and run an image through it: a wrong
    token grid or width is one line now, not a failure inside every trial (built-ins are not rebuilt)."""
    from trials.models import registered_embeddings

    registry = registered_embeddings()
    todo = {}
    for config in configs:
        spec = config.spec
        if not registry[spec.embedding].builtin:
            todo.setdefault((spec.embedding, spec.img_size, spec.backbone.dim, repr(spec.knobs)), spec)
    if todo:
        from trials.models.factory import check_embedding  # torch: a plugin imported it already

        for spec in todo.values():
            check_embedding(spec)


def _sweep_section(ctx: SpecContext, sweep: dict) -> tuple[dict, int]:
    """[sweep]'s SweepSpec fields, and max_trials."""
    ctx.check_keys("sweep", sweep, section_keys("sweep"))
    if "name" not in sweep:
        raise ctx.err("sweep", "[sweep] name is required (it names the MLflow experiment and the Tune run)")
    name = sweep["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.err("sweep.name", f"must be 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit, got {name!r}")
    got = ctx.section("sweep", {"mode": mode_of_metric})
    return {k: got[k] for k in ("name", "description", "metric", "mode", "seeds", "budget_hours")}, got["max_trials"]


def load_plugins(ctx: SpecContext, sweep: dict) -> tuple[str, ...]:
    """[sweep] plugins (and --plugin): import each module now, so its embeddings and knobs validate
    like the built-ins; a module may sit beside the spec."""
    from tokensweep.plugins import load_plugins as load
    from trials import PluginError

    plugins = sweep.get("plugins", [])
    if not (isinstance(plugins, list) and all(isinstance(p, str) and p for p in plugins)):
        raise ctx.err("sweep.plugins", f'must be a list of module names, e.g. ["my_embeddings"], got {plugins!r}')
    beside = (str(Path(ctx.source).resolve().parent),) if ctx.source != "<string>" else ()
    try:
        load(plugins, beside)
    except PluginError as err:
        raise ctx.err("sweep.plugins", str(err)) from None
    return tuple(dict.fromkeys([*ctx.flag_plugins, *plugins]))


def _bench(ctx: SpecContext) -> dict:
    """[bench]: the isolated throughput stage after the training trials (docs/sweeps.md)."""
    got = ctx.section("bench")
    return dict(bench=got["enabled"], bench_batch=got["batch"], bench_repeats=got["repeats"], bench_steps=got["steps"])


def _platform_values(fields: dict) -> dict:
    """What the platform sets in every trial's values: its torch threads, and whether it shares a GPU."""
    out = {}
    if fields["cpus"] >= 1:
        out["threads"] = int(fields["cpus"])  # torch would otherwise use every core of the node
    if fields["gpus"] is not None and 0 < fields["gpus"] < 1:
        out["gpu_shared"] = True
    return out


def resolve_data(ctx: SpecContext, base: dict, where: dict[str, str], flag: str | None, environ, shrunk: bool) -> None:
    """Which data set the trials read (base["dataset"]) and where (base["data_dir"], made absolute).

    The path: --data-dir > [trial] data_dir (or --set) > $TOKENSWEEP_DATA, which serves only a data
    set that needs a path. A path given with no data set named is an ImageFolder; given beside
    dataset "tiny" (generated data, reads no files) that no variant or grid value changes, it is an
    error, never silently unused. --smoke
    keeps the spec's data set where a path is given, else trains on generated data.
    """
    if flag is not None:
        base["data_dir"], where["data_dir"] = flag, "--data-dir"
    given = "data_dir" in base
    dataset = base.get("dataset", "imagefolder" if given else "tiny")
    wants_env = dataset != "tiny" and not given and bool(environ.get(DATA_ENV))
    if shrunk and not (given or wants_env) and "trial.dataset" not in ctx.set_keys:
        dataset = "tiny"  # the smoke preset's data: no path was given for the spec's
    if given and dataset == "tiny" and not datasets_beside(ctx.doc) - {"tiny"}:  # no trial reads the path
        named = where.get("dataset", "trial.dataset")
        raise _data_error(ctx, where["data_dir"], f"{base['data_dir']!r} is given, but {named} is 'tiny' (generated "
                          'data, which reads no files): set trial.dataset = "imagefolder" (or "imagenet100") to '
                          "train on it, or leave the data path out")  # fmt: skip
    base["dataset"] = dataset
    if wants_env:
        base["data_dir"], where["data_dir"] = environ[DATA_ENV], f"${DATA_ENV}"
    if "data_dir" in base:
        base["data_dir"] = checked_data_path(ctx, base["data_dir"], where["data_dir"])


def datasets_beside(doc: dict) -> set:
    """The data sets that [[variants]] tables or a [grid] name beside [trial]'s: a path given for a spec of
    generated data serves those of its trials that read a folder."""
    named = [v.get("dataset") for v in doc.get("variants", []) if isinstance(v, dict)]
    grid = doc.get("grid", {}) if isinstance(doc.get("grid"), dict) else {}
    named += grid.get("dataset", []) if isinstance(grid.get("dataset"), list) else []
    return {d for d in named if isinstance(d, str)}


def _data_error(ctx: SpecContext, label: str, message: str) -> SpecError:
    """At the key that set the path, or at the flag or variable (--data-dir, $TOKENSWEEP_DATA)."""
    return SpecError(f"{label}: {message}") if label.startswith(("--", "$")) else ctx.err(label, message)


def checked_data_path(ctx: SpecContext, value, label: str) -> str:
    """The data path as an absolute directory (trials run elsewhere), readable, with train/ and val/."""
    if not isinstance(value, str) or not value:
        raise _data_error(ctx, label, f"must be a directory path, got {value!r}")
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.isdir(path):
        raise _data_error(ctx, label, f"data path {value!r} does not exist or is not a directory (expected an ImageFolder root with train/ and val/)")
    try:  # an unreadable data path: isdir() below would call its train/ missing instead
        os.listdir(path)
    except PermissionError:
        raise _data_error(ctx, label, f"data path {value!r} is not readable (permission denied)") from None
    except OSError as err:
        raise _data_error(ctx, label, f"cannot read data path {value!r}: {err.strerror or err}") from None
    missing = [split for split in SPLITS if not os.path.isdir(os.path.join(path, split))]
    if missing:
        raise _data_error(ctx, label, f"data path {value!r} has no {missing[0]}/ folder (expected an ImageFolder root with train/ and val/)")
    return path


def build_scheduler(ctx: SpecContext, epochs: int, fields: dict) -> dict:
    sched = ctx.table("scheduler")
    ctx.check_keys("scheduler", sched, section_keys("scheduler"))
    kind = section_field("scheduler", "type")
    if ctx.declared_option("scheduler", sched, kind, kind.default, {}) == "fifo":  # asha's keys are errors, not read
        extra = [k for k in sched if k != "type"]
        if extra:
            raise ctx.err(f"scheduler.{extra[0]}", 'only applies to type = "asha"')
        return dict(scheduler="fifo")
    got = ctx.section("scheduler", {"metric": fields["metric"], "mode": mode_of_metric, "max_t": epochs})
    if fields.get("search") == "optuna" and len(fields["objectives"]) > 1:
        raise ctx.err(
            "scheduler.type",
            "asha cannot be combined with a multi-objective optuna search: early-stopped trials never report "
            "their final measurements (e.g. images_per_sec)",
        )
    return dict(scheduler="asha", scheduler_metric=got["metric"], scheduler_mode=got["mode"],
                grace_period=got["grace_period"], reduction_factor=got["reduction_factor"], max_t=got["max_t"])  # fmt: skip
