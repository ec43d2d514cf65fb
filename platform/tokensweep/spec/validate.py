"""Validation: every section of a parsed spec checked, every trial built with TrialConfig.from_dict."""

from __future__ import annotations

import dataclasses
import os
import re
import typing

from tokensweep.errors import SpecError
from tokensweep.spec.checks import is_int, is_num, jsonable, strip_key, suggest
from tokensweep.spec.grid import build_grid
from tokensweep.spec.model import (
    DATA_ENV,
    DEFAULT_MODES,
    EMBEDDINGS,
    EPOCH_METRICS,
    FINAL_METRICS,
    MODES,
    NAME_RE,
    SECTION_KEYS,
    SECTIONS,
    SweepSpec,
)
from tokensweep.spec.search import build_search


class Validator:
    """Checks a parsed spec document section by section and builds the SweepSpec (`build`)."""

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
                    f"is not a known option of [{section}]{suggest(key, allowed)}; known: {', '.join(allowed)}",
                )

    def int_opt(self, section, table, key, default, minimum, maximum=None):
        if key not in table:
            return default
        v = table[key]
        ok = is_int(v) and v >= minimum and (maximum is None or v <= maximum)
        if not ok:
            rng = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise self.err(f"{section}.{key}", f"must be an integer {rng}, got {v!r}")
        return v

    def num_opt(self, section, table, key, default, check, rule):
        if key not in table:
            return default
        v = table[key]
        if not (is_num(v) and check(v)):
            raise self.err(f"{section}.{key}", f"must be {rule}, got {v!r}")
        return float(v)

    def choice_opt(self, section, table, key, default, choices):
        if key not in table:
            return default
        v = table[key]
        if v not in choices:
            raise self.err(f"{section}.{key}", f"must be one of {', '.join(choices)}, got {v!r}{suggest(v, choices)}")
        return v

    def metric_opt(self, section, table, key, default, allowed):
        if key not in table:
            return default
        v = table[key]
        if v not in allowed:
            raise self.err(
                f"{section}.{key}", f"unknown metric {v!r}{suggest(v, allowed)}; choose one of: {', '.join(allowed)}"
            )
        return v

    # -- trial values --
    def check_trial_keys(self, section: str, values: dict, extra: tuple[str, ...] = ()) -> None:
        allowed = sorted(self.trial_fields | {"embedding"} | set(extra))
        for key in values:
            if key not in allowed:
                raise self.err(
                    f"{section}.{key}", f"is not a trial option{suggest(key, allowed)} (see TrialConfig in trials/config.py)"
                )

    def model_of(self, values: dict, where: dict[str, str]) -> str:
        """Resolve `embedding` into `model` (in place); check the model name; return it."""
        default_model = self.TrialConfig.model
        model = values.get("model", default_model)
        models = self.list_models()
        if not isinstance(model, str) or model not in models:
            raise self.err(
                where.get("model", "trial.model"),
                f"unknown model {model!r}{suggest(model, models)}; choose one of: {', '.join(models)}",
            )
        if "embedding" in values:
            emb = values.pop("embedding")
            key = where.get("embedding", "trial.embedding")
            if emb not in EMBEDDINGS:
                raise self.err(key, f"unknown embedding {emb!r}{suggest(emb, EMBEDDINGS)}; choose one of: {', '.join(EMBEDDINGS)}")
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
                text = strip_key(msg, key) if loc.endswith(f".{key}") else msg
                raise self.err(loc, f"{text}{suffix}") from None
            raise SpecError(f"{self.source}: trial {msg}{suffix}") from None
        return values

    # -- sections --
    def build(self) -> SweepSpec:
        doc = self.doc
        for section in doc:
            if section not in SECTIONS:
                raise self.err(section, f"is not a known section{suggest(section, SECTIONS)}; known: {', '.join(SECTIONS)}")

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
            fields.update(build_search(self, base, base_where))
        else:
            fields.update(build_grid(self, base, base_where))

        first = self.TrialConfig.from_dict(self.base_for_epochs(fields))
        if first.device == "cuda" and gpus == 0:
            raise self.err("resources.gpus", 'is 0, but trial.device = "cuda": give each trial a GPU (or device = "auto")')
        epochs = first.epochs
        fields.update(self.build_scheduler(epochs, fields))
        fields["resolved"] = jsonable(self.doc)
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
