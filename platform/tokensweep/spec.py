"""Sweep specs: a TOML file (plus `--set` overrides) -> a validated, immutable `SweepSpec`.

Everything a sweep will do is decided and checked here, before Ray, MLflow or Optuna is imported:
every trial of a grid is built and validated with `TrialConfig.from_dict`, every Optuna range is
checked at both ends. A bad value is a one-line `SpecError` naming the key and, when it came from
the file, `file:line`. Nothing here writes anywhere.

Sections (see docs/sweeps.md for the full reference):

    [sweep]      name (required), description, metric, mode
    [trial]      base TrialConfig values for every trial (plus `embedding`, see below)
    [grid]       TrialConfig options -> lists; the sweep is their cartesian product
    [[variants]] extra explicit trials (a table of options, optional `name`)
    [search]     algorithm = "optuna", num_samples, seed, objectives, [search.params]
    [resources]  cpus, gpus ("auto" or a number; < 1 shares a GPU), max_concurrent_trials
    [scheduler]  type = "fifo" | "asha", metric, mode, grace_period, reduction_factor, max_t
    [failure]    max_failures, keep_checkpoints
    [tracking]   system_metrics, system_metrics_interval_s

`embedding = "patch" | "conv" | "supertoken"` may stand in for `model`: it picks that embedding
within the base model's family (`vit_s_*`, `vit_tiny_*`).

Supertoken-only options (conv_depth, extra_conv, cluster_iters, channels, mask_border) set in
[trial] or [grid] apply to the supertoken trials of a sweep and are dropped from its patch and conv
trials (whose embedding has no such knob); trials that become identical are merged. If no trial of
the sweep is a supertoken model, setting one is an error. Set in a [[variants]] table beside a
non-supertoken model, it is an error too.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path

from tokensweep.errors import SpecError

# --- vocabulary ------------------------------------------------------------------------------

EMBEDDINGS = ("patch", "conv", "supertoken")
SUPERTOKEN_ONLY = ("conv_depth", "extra_conv", "cluster_iters", "channels", "mask_border")
EPOCH_METRICS = ("train_loss", "val_loss", "top1", "top5", "lr", "epoch_time_s")
FINAL_METRICS = (
    "params",
    "embed_params",
    "flops",
    "images_per_sec",
    "train_images_per_sec",
    "peak_mem_mb",
    "joules_per_image",
    "bad_images",
)
MEASURED_METRICS = ("flops", "images_per_sec", "train_images_per_sec", "peak_mem_mb", "joules_per_image")
MODES = ("max", "min")
DEFAULT_MODES = {"train_loss": "min", "val_loss": "min", "epoch_time_s": "min", "flops": "min", "params": "min"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # sweep names: a directory, a study, an experiment
TRIAL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+,-]{0,119}$")
DATA_ENV = "TOKENSWEEP_DATA"

SECTIONS = ("sweep", "trial", "grid", "variants", "search", "resources", "scheduler", "failure", "tracking")
SECTION_KEYS = {
    "sweep": ("name", "description", "metric", "mode"),
    "search": ("algorithm", "num_samples", "seed", "objectives", "params"),
    "resources": ("cpus", "gpus", "max_concurrent_trials"),
    "scheduler": ("type", "metric", "mode", "grace_period", "reduction_factor", "max_t"),
    "failure": ("max_failures", "keep_checkpoints"),
    "tracking": ("system_metrics", "system_metrics_interval_s"),
}
PARAM_KEYS = ("low", "high", "step", "log", "choices")
INDEXED = re.compile(r"^(?P<key>[a-z_]+)\[(?P<index>\d+)\]$")


# --- the result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialVariant:
    """One grid trial: its name and the TrialConfig values it sets (validated)."""

    name: str
    values: dict


@dataclass(frozen=True)
class SearchParam:
    """One Optuna dimension: an int/float range or a list of choices for a TrialConfig option.

    `key` is an option name (`lr`) or an element of a list option (`channels[2]`).
    """

    key: str
    kind: str  # int | float | choice
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str  # the spec file's path, or "<string>"
    text: str  # the spec file's text, as read
    overrides: tuple[str, ...]  # the --set arguments, as given
    description: str = ""
    search: str = "grid"  # grid | optuna
    base: dict = field(default_factory=dict)  # [trial] values (+ platform-set data_dir, threads)
    variants: tuple[TrialVariant, ...] = ()  # grid: every trial
    params: tuple[SearchParam, ...] = ()  # optuna: the space
    num_samples: int = 1
    seed: int | None = None
    objectives: tuple[tuple[str, str], ...] = ()  # optuna: (metric, max|min) ...
    metric: str = "top1"
    mode: str = "max"
    cpus: float = 1.0
    gpus: float | None = None  # None: auto (1 when the cluster has GPUs, else 0)
    max_concurrent_trials: int | None = None
    scheduler: str = "fifo"
    scheduler_metric: str = "top1"
    scheduler_mode: str = "max"
    grace_period: int = 1
    reduction_factor: float = 3.0
    max_t: int | None = None
    max_failures: int = 1
    keep_checkpoints: int = 2
    system_metrics: bool = True
    system_metrics_interval_s: float = 10.0
    resolved: dict = field(default_factory=dict)  # the merged spec document (file + --set), JSON-able

    @property
    def num_trials(self) -> int:
        return len(self.variants) if self.search == "grid" else self.num_samples

    def with_gpus(self, gpus: float) -> "SweepSpec":
        return dataclasses.replace(self, gpus=gpus)

    @property
    def gpu_shared(self) -> bool:
        return self.gpus is not None and 0 < self.gpus < 1

    def trial_values(self, values: dict) -> dict:
        """The TrialConfig dict a trial runs: spec values plus what the platform sets."""
        out = dict(values)
        if out.get("threads") is None and self.cpus >= 1:
            out["threads"] = int(self.cpus)  # torch would otherwise use every core of the node
        if self.gpu_shared:
            out["gpu_shared"] = True
        return out


# --- locations ---------------------------------------------------------------------------------

_HEADER_AOT = re.compile(r"^\[\[\s*([^\]]+?)\s*\]\]")
_HEADER = re.compile(r"^\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"""^("(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[A-Za-z0-9_.-]+))\s*=""")


def _norm_table(name: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in name.split("."))


def key_lines(text: str) -> dict[str, int]:
    """'table.key' -> 1-based line, for simple `key = value` lines and table headers (best effort)."""
    lines: dict[str, int] = {}
    table = ""
    aot: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := _HEADER_AOT.match(line):
            name = _norm_table(m[1])
            index = aot.get(name, 0)
            aot[name] = index + 1
            table = f"{name}[{index}]"
            lines.setdefault(table, number)
            continue
        if m := _HEADER.match(line):
            table = _norm_table(m[1])
            lines.setdefault(table, number)
            continue
        if m := _KEY.match(line):
            key = m["dq"] if m["dq"] is not None else m["sq"] if m["sq"] is not None else m["bare"]
            lines.setdefault(f"{table}.{key}" if table else key, number)
    return lines


class _Locator:
    """Turns a dotted key into 'file:line: key' (or '--set key') for error messages."""

    def __init__(self, source: str, text: str, set_keys: dict[str, str]):
        self.source = source
        self.lines = key_lines(text)
        self.set_keys = set_keys  # dotted key -> the --set argument

    def where(self, key: str) -> str:
        probe = key
        while True:
            if probe in self.set_keys:
                return f"--set {self.set_keys[probe]}: {key}"
            if probe in self.lines:
                return f"{self.source}:{self.lines[probe]}: {key}"
            if "." not in probe:
                return f"{self.source}: {key}"
            probe = probe.rsplit(".", 1)[0]

    def error(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.where(key)} {message}")


# --- reading ---------------------------------------------------------------------------------


def parse_value(text: str):
    """A --set value as TOML (2, 1e-3, true, [1, 2], "x"); anything TOML can't parse is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_set(doc: dict, assignment: str) -> str:
    """Apply one `--set a.b.c=value` to the parsed document; returns the dotted key."""
    key, sep, value = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise SpecError(f"--set {assignment!r}: expected KEY=VALUE with a dotted key, e.g. trial.epochs=2")
    parts = key.split(".")
    node = doc
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if isinstance(child, list) and part == "variants":
            raise SpecError(f"--set {assignment}: [[variants]] entries cannot be set from the command line")
        if not isinstance(child, dict):
            raise SpecError(f"--set {assignment}: {'.'.join(parts[: depth + 1])} is not a table")
        node = child
    node[parts[-1]] = parse_value(value.strip())
    return key


def read_spec_text(path: str | os.PathLike) -> str:
    p = Path(path)
    if not p.is_file():
        hint = ""
        if not p.suffix and Path(f"{p}.toml").is_file():
            hint = f" (did you mean {p}.toml?)"
        raise SpecError(f"sweep spec {str(path)!r} does not exist or is not a file{hint}")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read sweep spec {str(path)!r}: {err}") from None


def load_spec(
    path: str | os.PathLike,
    overrides: typing.Sequence[str] = (),
    data_dir: str | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> SweepSpec:
    """Read, override and validate a sweep spec file."""
    return parse_spec(read_spec_text(path), str(path), overrides, data_dir, environ)


def parse_spec(
    text: str,
    source: str = "<string>",
    overrides: typing.Sequence[str] = (),
    data_dir: str | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> SweepSpec:
    environ = os.environ if environ is None else environ
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib says "... (at line 3, column 7)": put the location first, like every other error
        msg = str(err)
        if m := re.search(r"\(at line (\d+), column \d+\)$", msg):
            raise SpecError(f"{source}:{m[1]}: malformed TOML: {msg[: m.start()].strip()}") from None
        raise SpecError(f"{source}: malformed TOML: {msg}") from None
    set_keys = {apply_set(doc, item): item for item in overrides}
    loc = _Locator(source, text, set_keys)
    return _Validator(doc, loc, text, source, tuple(overrides), data_dir, environ).build()


# --- validation ------------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class _Validator:
    def __init__(self, doc, loc, text, source, overrides, data_dir, environ):
        from trials import TrialConfig
        from trials.models import list_models, resolve_model

        self.TrialConfig = TrialConfig
        self.list_models = list_models
        self.resolve_model = resolve_model
        self.trial_fields = {f.name for f in dataclasses.fields(TrialConfig)}
        self.doc, self.loc, self.text, self.source = doc, loc, text, source
        self.overrides, self.data_dir_flag, self.environ = overrides, data_dir, environ

    # -- helpers --
    def err(self, key: str, message: str) -> SpecError:
        return self.loc.error(key, message)

    def table(self, name: str) -> dict:
        value = self.doc.get(name, {})
        if not isinstance(value, dict):
            raise self.err(name, f"must be a table ([{name}]), got {value!r}")
        return value

    def check_keys(self, section: str, table: dict, allowed: typing.Iterable[str]) -> None:
        allowed = list(allowed)
        for key in table:
            if key not in allowed:
                raise self.err(
                    f"{section}.{key}",
                    f"is not a known option of [{section}]{_suggest(key, allowed)}; known: {', '.join(allowed)}",
                )

    def int_opt(self, section, table, key, default, minimum, maximum=None):
        if key not in table:
            return default
        v = table[key]
        ok = _is_int(v) and v >= minimum and (maximum is None or v <= maximum)
        if not ok:
            rng = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise self.err(f"{section}.{key}", f"must be an integer {rng}, got {v!r}")
        return v

    def num_opt(self, section, table, key, default, check, rule):
        if key not in table:
            return default
        v = table[key]
        if not (_is_num(v) and check(v)):
            raise self.err(f"{section}.{key}", f"must be {rule}, got {v!r}")
        return float(v)

    def choice_opt(self, section, table, key, default, choices):
        if key not in table:
            return default
        v = table[key]
        if v not in choices:
            raise self.err(f"{section}.{key}", f"must be one of {', '.join(choices)}, got {v!r}{_suggest(v, choices)}")
        return v

    def metric_opt(self, section, table, key, default, allowed):
        if key not in table:
            return default
        v = table[key]
        if v not in allowed:
            raise self.err(
                f"{section}.{key}", f"unknown metric {v!r}{_suggest(v, allowed)}; choose one of: {', '.join(allowed)}"
            )
        return v

    # -- trial values --
    def check_trial_keys(self, section: str, values: dict, extra: tuple[str, ...] = ()) -> None:
        allowed = sorted(self.trial_fields | {"embedding"} | set(extra))
        for key in values:
            if key not in allowed:
                raise self.err(
                    f"{section}.{key}", f"is not a trial option{_suggest(key, allowed)} (see TrialConfig in trials/config.py)"
                )

    def model_of(self, values: dict, where: dict[str, str]) -> str:
        """Resolve `embedding` into `model` (in place); check the model name; return it."""
        default_model = self.TrialConfig.model
        model = values.get("model", default_model)
        models = self.list_models()
        if not isinstance(model, str) or model not in models:
            raise self.err(
                where.get("model", "trial.model"),
                f"unknown model {model!r}{_suggest(model, models)}; choose one of: {', '.join(models)}",
            )
        if "embedding" in values:
            emb = values.pop("embedding")
            key = where.get("embedding", "trial.embedding")
            if emb not in EMBEDDINGS:
                raise self.err(key, f"unknown embedding {emb!r}{_suggest(emb, EMBEDDINGS)}; choose one of: {', '.join(EMBEDDINGS)}")
            family = model.rsplit("_", 1)[0]
            model = f"{family}_{emb}"
            if model not in models:
                raise self.err(key, f"embedding {emb!r} does not exist for model family {family!r} (no model {model!r})")
            where["model"] = key
        values["model"] = model  # explicit, also when it is TrialConfig's default
        return model

    def validate_trial(self, values: dict, where: dict[str, str], context: str = "") -> dict:
        """Build the TrialConfig to check it; map an error to the key it names."""
        from trials.errors import ConfigError

        try:
            self.TrialConfig.from_dict(values, where="\0")
        except ConfigError as err:
            msg = str(err)
            key = None
            if m := re.search(r"has no option '([a-z_]+)'", msg):
                key = m[1]
            elif "unknown model" in msg:
                key = "model"
            elif m := re.search(r"\x00([a-z_]+)", msg):
                key = m[1]
            else:  # errors from the model registry name the option in quotes or first
                for k in sorted(values, key=len, reverse=True):
                    if re.search(rf"(^|[\s'\"\x00]){re.escape(k)}\b", msg):
                        key = k
                        break
            msg = msg.replace("\0", "")
            suffix = f" ({context})" if context else ""
            if key is not None:
                loc = where.get(key, f"trial.{key}")
                text = _strip_key(msg, key) if loc.endswith(f".{key}") else msg
                raise self.err(loc, f"{text}{suffix}") from None
            raise SpecError(f"{self.source}: trial {msg}{suffix}") from None
        return values

    # -- sections --
    def build(self) -> SweepSpec:
        doc = self.doc
        for section in doc:
            if section not in SECTIONS:
                raise self.err(section, f"is not a known section{_suggest(section, SECTIONS)}; known: {', '.join(SECTIONS)}")

        sweep = self.table("sweep")
        self.check_keys("sweep", sweep, SECTION_KEYS["sweep"])
        if "name" not in sweep:
            raise self.err("sweep", "[sweep] name is required (it names the MLflow experiment and the Tune run)")
        name = sweep["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise self.err("sweep.name", f"must be 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit, got {name!r}")
        description = sweep.get("description", "")
        if not isinstance(description, str):
            raise self.err("sweep.description", f"must be a string, got {description!r}")

        has_grid = "grid" in doc or "variants" in doc
        has_search = "search" in doc
        if has_grid and has_search:
            key = "search" if "search" in doc else "grid"
            raise self.err(key, "a sweep has either [grid]/[[variants]] or [search], not both")

        base = dict(self.table("trial"))
        self.check_trial_keys("trial", base)
        base_where = {k: f"trial.{k}" for k in base}
        self.resolve_data_dir(base, base_where)

        resources = self.table("resources")
        self.check_keys("resources", resources, SECTION_KEYS["resources"])
        cpus = self.num_opt("resources", resources, "cpus", 1.0, lambda v: v > 0, "a number > 0 (CPUs per trial)")
        gpus = None
        if resources.get("gpus", "auto") != "auto":
            gpus = self.num_opt("resources", resources, "gpus", None, lambda v: v >= 0, 'a number >= 0 or "auto"')
        mct = self.int_opt("resources", resources, "max_concurrent_trials", None, 1)
        self._cpus, self._gpus = cpus, gpus

        failure = self.table("failure")
        self.check_keys("failure", failure, SECTION_KEYS["failure"])
        max_failures = self.int_opt("failure", failure, "max_failures", 1, 0, 1000)
        keep = self.int_opt("failure", failure, "keep_checkpoints", 2, 1, 1000)

        tracking = self.table("tracking")
        self.check_keys("tracking", tracking, SECTION_KEYS["tracking"])
        sysm = tracking.get("system_metrics", True)
        if not isinstance(sysm, bool):
            raise self.err("tracking.system_metrics", f"must be true or false, got {sysm!r}")
        interval = self.num_opt("tracking", tracking, "system_metrics_interval_s", 10.0, lambda v: v > 0, "a number > 0 (seconds)")

        all_metrics = EPOCH_METRICS + FINAL_METRICS
        metric = self.metric_opt("sweep", sweep, "metric", "top1", all_metrics)
        mode = self.choice_opt("sweep", sweep, "mode", DEFAULT_MODES.get(metric, "max"), MODES)

        fields: dict = dict(
            name=name,
            source=self.source,
            text=self.text,
            overrides=self.overrides,
            description=description,
            metric=metric,
            mode=mode,
            cpus=cpus,
            gpus=gpus,
            max_concurrent_trials=mct,
            max_failures=max_failures,
            keep_checkpoints=keep,
            system_metrics=sysm,
            system_metrics_interval_s=interval,
        )
        if has_search:
            fields.update(self.build_search(base, base_where))
        else:
            fields.update(self.build_grid(base, base_where))

        first = self.TrialConfig.from_dict(self.base_for_epochs(fields))
        if first.device == "cuda" and gpus == 0:
            raise self.err("resources.gpus", 'is 0, but trial.device = "cuda": give each trial a GPU (or device = "auto")')
        epochs = first.epochs
        fields.update(self.build_scheduler(epochs, fields))
        fields["resolved"] = _jsonable(self.doc)
        return SweepSpec(**fields)

    def base_for_epochs(self, fields: dict) -> dict:
        if fields.get("search") == "optuna":
            return fields["base"]
        return fields["variants"][0].values

    def resolve_data_dir(self, base: dict, where: dict[str, str]) -> None:
        """data_dir: --data-dir > --set/[trial] data_dir > $TOKENSWEEP_DATA; made absolute (trials run elsewhere)."""
        if self.data_dir_flag is not None:
            base["data_dir"], where["data_dir"] = self.data_dir_flag, "--data-dir"
        elif "data_dir" not in base and self.environ.get(DATA_ENV):
            base["data_dir"], where["data_dir"] = self.environ[DATA_ENV], f"${DATA_ENV}"
        if "data_dir" in base:
            value = base["data_dir"]
            label = where["data_dir"]
            if not isinstance(value, str) or not value:
                raise self._data_err(label, f"must be a directory path, got {value!r}")
            path = os.path.abspath(os.path.expanduser(value))
            if not os.path.isdir(path):
                raise self._data_err(
                    label, f"data path {value!r} does not exist or is not a directory (expected an ImageFolder root with train/ and val/)"
                )
            try:  # an unreadable data path: isdir() below would call its train/ missing instead
                os.listdir(path)
            except PermissionError:
                raise self._data_err(label, f"data path {value!r} is not readable (permission denied)") from None
            except OSError as err:
                raise self._data_err(label, f"cannot read data path {value!r}: {err.strerror or err}") from None
            dataset = base.get("dataset", self.TrialConfig.dataset)
            missing = [split for split in ("train", "val") if not os.path.isdir(os.path.join(path, split))]
            if dataset != "tiny" and missing:
                raise self._data_err(
                    label, f"data path {value!r} has no {missing[0]}/ folder (expected an ImageFolder root with train/ and val/)"
                )
            base["data_dir"] = path

    def _data_err(self, label: str, message: str) -> SpecError:
        if label.startswith(("--", "$")):
            return SpecError(f"{label}: {message}")
        return self.err(label, message)

    def require_data(self, values: dict, where: dict[str, str]) -> None:
        dataset = values.get("dataset", self.TrialConfig.dataset)
        if dataset != "tiny" and "data_dir" not in values:
            key = where.get("dataset", "trial.dataset")
            raise self.err(key, f"is {dataset!r} but no data path is set: pass --data-dir DIR or set ${DATA_ENV}")

    # -- grid --
    def build_grid(self, base: dict, base_where: dict) -> dict:
        grid = self.table("grid")
        self.check_trial_keys("grid", grid)
        if "grid" in self.doc and not grid and "variants" not in self.doc:
            raise self.err("grid", "is empty: give at least one option with a list of values (empty search space)")
        axes = []
        for key, values in grid.items():
            if not isinstance(values, list):
                raise self.err(f"grid.{key}", f"must be a list of values to sweep, got {values!r}")
            if not values:
                raise self.err(f"grid.{key}", "is an empty list (empty search space)")
            if key == "channels" and not all(isinstance(v, list) for v in values):
                raise self.err("grid.channels", f"must be a list of channel lists, e.g. [[16,32,32,64,64,64]], got {values!r}")
            axes.append((key, values))

        variants_doc = self.doc.get("variants", [])
        if not isinstance(variants_doc, list) or not all(isinstance(v, dict) for v in variants_doc):
            raise self.err("variants", "must be an array of tables ([[variants]])")
        if "variants" in self.doc and not variants_doc and not axes:
            raise self.err("variants", "is empty (empty search space)")

        # candidates: (values, where, origin of each key, name or None, context)
        candidates = []
        if axes or not variants_doc:
            keys = [k for k, _ in axes]
            for combo in itertools.product(*(v for _, v in axes)):
                values = dict(base)
                where = dict(base_where)
                for k, v in zip(keys, combo):
                    values[k] = v
                    where[k] = f"grid.{k}"
                context = ", ".join(f"{k}={_fmt(v)}" for k, v in zip(keys, combo))
                candidates.append((values, where, set(), None, keys, context))
        for i, entry in enumerate(variants_doc):
            self.check_trial_keys(f"variants[{i}]", entry, extra=("name",))
            values = dict(base)
            where = dict(base_where)
            explicit = set()
            name = entry.get("name")
            if name is not None and (not isinstance(name, str) or not TRIAL_NAME_RE.match(name)):
                raise self.err(
                    f"variants[{i}].name", f"must be 1-120 letters, digits or any of _ . = + , - (no spaces), got {name!r}"
                )
            for k, v in entry.items():
                if k == "name":
                    continue
                values[k] = v
                where[k] = f"variants[{i}].{k}"
                explicit.add(k)
            keys = [k for k in entry if k != "name"]
            context = f"variant {name or i}"
            candidates.append((values, where, explicit, name, keys, context))

        # resolve models first, to know whether the sweep has supertoken trials
        for values, where, *_ in candidates:
            self.model_of(values, where)
        embeddings = {self.resolve_model(v["model"]).embedding for v, *_ in candidates}
        has_st = "supertoken" in embeddings

        variants: list[TrialVariant] = []
        seen: dict[str, str] = {}
        names: set[str] = set()
        for values, where, explicit, name, keys, context in candidates:
            emb = self.resolve_model(values["model"]).embedding
            if emb != "supertoken":
                for k in SUPERTOKEN_ONLY:
                    if k in values and values[k] is not None:
                        if k in explicit or not has_st:
                            raise self.err(
                                where[k],
                                f"applies only to supertoken models, but model {values['model']!r} has a {emb} embedding",
                            )
                        del values[k]
            self.require_data(values, where)
            self.validate_trial(values, where, context)
            fingerprint = json.dumps(_jsonable(values), sort_keys=True)
            if fingerprint in seen:
                continue
            trial_name = name or _auto_name(values, [k for k in keys if k in values or k == "embedding"])
            base_name, n = trial_name, 2
            while trial_name in names:
                trial_name, n = f"{base_name}-{n}", n + 1
            names.add(trial_name)
            seen[fingerprint] = trial_name
            variants.append(TrialVariant(trial_name, _jsonable(values)))
        return dict(search="grid", base=_jsonable(base), variants=tuple(variants))

    # -- optuna --
    def build_search(self, base: dict, base_where: dict) -> dict:
        search = self.table("search")
        self.check_keys("search", search, SECTION_KEYS["search"])
        algorithm = search.get("algorithm")
        if algorithm is None:
            raise self.err("search", '[search] needs algorithm = "optuna"')
        if algorithm != "optuna":
            raise self.err("search.algorithm", f'must be "optuna", got {algorithm!r}{_suggest(algorithm, ["optuna"])}')
        num_samples = self.int_opt("search", search, "num_samples", 10, 1, 100_000)
        seed = self.int_opt("search", search, "seed", None, 0)

        objectives_doc = search.get("objectives")
        if objectives_doc is None:
            raise self.err("search", "[search] needs objectives, e.g. objectives = { top1 = \"max\", images_per_sec = \"max\" }")
        if not isinstance(objectives_doc, dict) or not objectives_doc:
            raise self.err("search.objectives", f"must be a non-empty table metric = \"max\"|\"min\", got {objectives_doc!r}")
        all_metrics = EPOCH_METRICS + FINAL_METRICS
        objectives = []
        for metric, mode in objectives_doc.items():
            if metric not in all_metrics:
                raise self.err(
                    f"search.objectives.{metric}",
                    f"unknown metric {metric!r}{_suggest(metric, all_metrics)}; choose one of: {', '.join(all_metrics)}",
                )
            if mode not in MODES:
                raise self.err(f"search.objectives.{metric}", f'must be "max" or "min", got {mode!r}')
            objectives.append((metric, mode))

        params_doc = search.get("params")
        if not isinstance(params_doc, dict) or not params_doc:
            raise self.err("search.params" if "params" in search else "search", "has no params: the search space is empty")

        base = dict(base)
        where = dict(base_where)
        self.model_of(base, where)
        self.require_data(base, where)
        emb = self.resolve_model(base["model"]).embedding
        params = []
        for key, spec in params_doc.items():
            params.append(self.search_param(key, spec, base, emb))
        # every objective must be in the last report
        if not base.get("measure", True):
            for metric, _ in objectives:
                if metric in MEASURED_METRICS:
                    raise self.err(
                        "trial.measure", f"is false, but objective {metric!r} is only measured when trial.measure = true"
                    )
        # every end of every range (and every choice) against the real TrialConfig, then all together
        self.validate_trial(base, where)
        for p in params:
            p_where = {**where, _root(p.key): f"search.params.{p.key}"}
            for value in p.choices or (p.low, p.high):
                values = apply_search_values(base, {p.key: value})
                self.validate_trial(values, p_where, f"at {p.key} = {value!r}")
        for corner in ("low", "high"):
            values = apply_search_values(base, {p.key: _corner(p, corner) for p in params})
            self.validate_trial(values, where, f"with every search param at its {corner} end")
        return dict(
            search="optuna",
            base=_jsonable(base),
            params=tuple(params),
            num_samples=num_samples,
            seed=seed,
            objectives=tuple(objectives),
        )

    def search_param(self, key: str, spec, base: dict, emb: str) -> SearchParam:
        full = f"search.params.{key}"
        m = INDEXED.match(key)
        root = m["key"] if m else key
        if root not in self.trial_fields or root in ("model", "dataset", "data_dir", "device"):
            raise self.err(full, f"is not a searchable trial option{_suggest(root, sorted(self.trial_fields))}")
        if root in SUPERTOKEN_ONLY and emb != "supertoken":
            raise self.err(full, f"applies only to supertoken models, but model {base['model']!r} has a {emb} embedding")
        if m:
            if root != "channels":
                raise self.err(full, "only channels[i] may be indexed")
            length = len(self.resolve_model(base["model"]).channels)
            if int(m["index"]) >= length:
                raise self.err(full, f"index {m['index']} is out of range: channels has {length} widths (channels[0]..channels[{length - 1}])")
        if root in base and not m:
            raise self.err(full, f"is also set in [trial] ({root} = {_fmt(base[root])}); remove one")
        if not isinstance(spec, dict):
            raise self.err(full, f"must be a table like {{ low = 8, high = 64, step = 8 }} or {{ choices = [...] }}, got {spec!r}")
        for k in spec:
            if k not in PARAM_KEYS:
                raise self.err(f"{full}.{k}", f"is not a parameter option{_suggest(k, PARAM_KEYS)}; known: {', '.join(PARAM_KEYS)}")
        if "choices" in spec:
            extra = set(spec) - {"choices"}
            if extra:
                raise self.err(full, f"choices cannot be combined with {', '.join(sorted(extra))}")
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise self.err(f"{full}.choices", "must be a non-empty list (empty search space)")
            if not all(isinstance(c, (bool, int, float, str)) for c in choices):
                raise self.err(
                    f"{full}.choices", "must be numbers, strings or booleans (search list options one element at a time, e.g. channels[0])"
                )
            return SearchParam(key, "choice", choices=tuple(_jsonable(c) for c in choices))
        for k in ("low", "high"):
            if k not in spec:
                raise self.err(full, f"needs {k} (or choices = [...])")
            if not _is_num(spec[k]):
                raise self.err(f"{full}.{k}", f"must be a number, got {spec[k]!r}")
        low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
        if not isinstance(log, bool):
            raise self.err(f"{full}.log", f"must be true or false, got {log!r}")
        is_int = _is_int(low) and _is_int(high) and (step is None or _is_int(step))
        if low > high:
            raise self.err(full, f"low ({low}) is greater than high ({high}): empty search space")
        if step is not None:
            if not _is_num(step) or step <= 0:
                raise self.err(f"{full}.step", f"must be a number > 0, got {step!r}")
            if log:
                raise self.err(full, "step and log = true cannot be combined (Optuna does not support it)")
        if log and low <= 0:
            raise self.err(f"{full}.low", f"must be > 0 when log = true, got {low!r}")
        return SearchParam(key, "int" if is_int else "float", low=low, high=high, step=step, log=log)

    # -- scheduler --
    def build_scheduler(self, epochs: int, fields: dict) -> dict:
        sched = self.table("scheduler")
        self.check_keys("scheduler", sched, SECTION_KEYS["scheduler"])
        kind = self.choice_opt("scheduler", sched, "type", "fifo", ("fifo", "asha"))
        if kind == "fifo":
            extra = [k for k in sched if k != "type"]
            if extra:
                raise self.err(f"scheduler.{extra[0]}", 'only applies to type = "asha"')
            return dict(scheduler="fifo")
        metric = self.metric_opt("scheduler", sched, "metric", fields["metric"], EPOCH_METRICS)
        mode = self.choice_opt("scheduler", sched, "mode", DEFAULT_MODES.get(metric, "max"), MODES)
        max_t = self.int_opt("scheduler", sched, "max_t", epochs, 1)
        grace = self.int_opt("scheduler", sched, "grace_period", 1, 1, max_t)
        rf = self.num_opt("scheduler", sched, "reduction_factor", 3.0, lambda v: v > 1, "a number > 1")
        if fields.get("search") == "optuna" and len(fields["objectives"]) > 1:
            raise self.err(
                "scheduler.type",
                "asha cannot be combined with a multi-objective optuna search: early-stopped trials never report "
                "their final measurements (e.g. images_per_sec)",
            )
        return dict(
            scheduler="asha",
            scheduler_metric=metric,
            scheduler_mode=mode,
            grace_period=grace,
            reduction_factor=rf,
            max_t=max_t,
        )


def _strip_key(message: str, key: str) -> str:
    """'epochs must be ...' -> 'must be ...' (the location already names the key)."""
    for prefix in (f"{key} ", f"trial option {key!r}"):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _root(key: str) -> str:
    m = INDEXED.match(key)
    return m["key"] if m else key


def _corner(p: SearchParam, which: str):
    if p.kind == "choice":
        return p.choices[0] if which == "low" else p.choices[-1]
    return p.low if which == "low" else p.high


def apply_search_values(base: dict, values: dict) -> dict:
    """Merge Optuna's suggestions into the base trial values; `channels[i]` set single widths."""
    out = dict(base)
    indexed = {}
    for key, value in values.items():
        m = INDEXED.match(key)
        if m:
            indexed.setdefault(m["key"], {})[int(m["index"])] = value
        else:
            out[key] = value
    if indexed:
        from trials.models import resolve_model

        spec = resolve_model(out.get("model", "vit_s_supertoken"))
        for root, items in indexed.items():
            current = list(out.get(root) or getattr(spec, root))
            for i, v in items.items():
                current[i] = int(v) if isinstance(v, float) and v.is_integer() else v
            out[root] = current
    return out


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_fmt(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _auto_name(values: dict, keys: list[str]) -> str:
    parts = [values["model"]]
    for k in keys:
        if k in ("model", "embedding") or k not in values:
            continue
        parts.append(f"{k}={_fmt(values[k])}")
    return "-".join(parts)


def search_trial_name(search_values: dict) -> str:
    """A readable name for an Optuna trial from its suggested values."""
    parts = []
    chans = {int(INDEXED.match(k)["index"]): v for k, v in search_values.items() if INDEXED.match(k)}
    if chans:
        parts.append("channels=" + "-".join(_fmt(chans[i]) for i in sorted(chans)))
    for k, v in search_values.items():
        if not INDEXED.match(k):
            parts.append(f"{k}={_fmt(round(v, 6) if isinstance(v, float) else v)}")
    return ",".join(parts) or "trial"


__all__ = ["SearchParam", "SweepSpec", "TrialVariant", "apply_search_values", "key_lines", "load_spec", "parse_spec"]
