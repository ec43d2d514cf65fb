"""What spec checks report through, and the small predicates they share.

Small predicates and helpers every part of spec validation uses.

The parsed spec document and its locations: what every section's check reads and reports through.

Errors name the key where it was set (`file:line: key`, or `--set KEY=VALUE: key`); a trial value is
checked by building its TrialConfig, whose error carries the option it is about (`ConfigError.key`).
"""

from __future__ import annotations

import dataclasses
import typing
from difflib import get_close_matches

from tokensweep.errors import SpecError
from tokensweep.payload import INDEXED
from tokensweep.spec.model import DATA_ENV, SECTION_TYPES
from vocab.values import is_int, is_number


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def jsonable(value):
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def strip_key(message: str, key: str) -> str:
    """'epochs must be ...' -> 'must be ...' (the location already names the key)."""
    for prefix in (f"{key} ", f"trial option {key!r}"):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def root_key(key: str) -> str:
    m = INDEXED.match(key)
    return m["key"] if m else key


class SpecContext:
    def __init__(self, doc: dict, loc, text: str, source: str, overrides: tuple, set_keys: dict, flag_plugins=()):
        self.doc, self.loc, self.text, self.source = doc, loc, text, source
        self.overrides = overrides
        self.flag_plugins = tuple(flag_plugins)  # --plugin modules, loaded before the spec was read
        self.set_keys = set_keys  # dotted key -> the --set argument that set it

    # --- reporting ---
    def err(self, key: str, message: str) -> SpecError:
        return self.loc.error(key, message)

    # --- reading sections ---
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

    def section(self, name: str, defaults: dict | None = None) -> dict:
        """[name] read as its *Section declares it (model.py): every key checked, an absent one its default.
        `defaults`: the defaults derived from elsewhere, each a value or a function of the keys read before it."""
        table = self.table(name)
        declared = dataclasses.fields(SECTION_TYPES[name])
        self.check_keys(name, table, [f.name for f in declared])
        got: dict = {}
        for f in declared:
            default = (defaults or {}).get(f.name, f.default)
            got[f.name] = self.declared_option(name, table, f, default(got) if callable(default) else default, got)
        return got

    def declared_option(self, section: str, table: dict, f: dataclasses.Field, default, got: dict):
        """One key as its field's metadata rules; a key with no rule there is returned as given."""
        m, key = f.metadata, f.name
        if m.get("auto") and table.get(key) == "auto":
            return default
        if "minimum" in m:
            maximum = got[m["maximum"]] if isinstance(m.get("maximum"), str) else m.get("maximum")
            return self.int_opt(section, table, key, default, m["minimum"], maximum)
        if "check" in m:
            return self.num_opt(section, table, key, default, m["check"], m["rule"])
        if "choices" in m:
            return self.choice_opt(section, table, key, default, m["choices"])
        if "metrics" in m:
            return self.metric_opt(section, table, key, default, m["metrics"])
        if m.get("seeds"):
            return self.int_list(section, table, key)
        if m.get("boolean"):
            return self.option(section, table, key, default, lambda v: isinstance(v, bool),
                               lambda v: f"must be true or false, got {v!r}")  # fmt: skip
        if m.get("string"):
            return self.option(section, table, key, default, lambda v: isinstance(v, str), lambda v: f"must be a string, got {v!r}")
        return table.get(key, default)

    def option(self, section: str, table: dict, key: str, default, ok, complaint):
        """table[key] if `ok(value)`, `default` if the key is absent; else an error at the key, `complaint(value)`."""
        if key not in table:
            return default
        v = table[key]
        if not ok(v):
            raise self.err(f"{section}.{key}", complaint(v))
        return v

    def int_opt(self, section, table, key, default, minimum, maximum=None):
        rng = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        return self.option(section, table, key, default,
                           lambda v: is_int(v) and v >= minimum and (maximum is None or v <= maximum),
                           lambda v: f"must be an integer {rng}, got {v!r}")  # fmt: skip

    def num_opt(self, section, table, key, default, check, rule):
        v = self.option(section, table, key, default, lambda v: is_number(v) and check(v), lambda v: f"must be {rule}, got {v!r}")
        return float(v) if key in table else v

    def choice_opt(self, section, table, key, default, choices):
        return self.option(section, table, key, default, lambda v: v in choices,
                           lambda v: f"must be one of {', '.join(choices)}, got {v!r}{suggest(v, choices)}")  # fmt: skip

    def metric_opt(self, section, table, key, default, allowed):
        return self.option(section, table, key, default, lambda v: v in allowed,
                           lambda v: f"unknown metric {v!r}{suggest(v, allowed)}; choose one of: {', '.join(allowed)}")  # fmt: skip

    def int_list(self, section: str, table: dict, key: str) -> tuple[int, ...]:
        """A list of distinct seeds (integers in numpy's seed range)."""
        from trials.config import MAX_SEED

        return tuple(self.option(
            section, table, key, (),
            lambda v: isinstance(v, list) and v and all(is_int(x) and 0 <= x <= MAX_SEED for x in v) and len(set(v)) == len(v),
            lambda v: f"must be a non-empty list of distinct integers from 0 to {MAX_SEED}, e.g. [0, 1, 2], got {v!r}",
        ))  # fmt: skip

    # --- trial values ---
    def check_trial_keys(self, section: str, values: dict, extra: tuple[str, ...] = ()) -> None:
        from trials import TrialConfig

        allowed = sorted(TrialConfig.option_names() | set(extra))
        for key in values:
            if key not in allowed:
                raise self.err(f"{section}.{key}", f"is not a trial option{suggest(key, allowed)} (see docs/sweeps.md)")

    def pick_model(self, values: dict, where: dict[str, str]) -> str:
        """The model the values' model/backbone/embedding name, checked; the key of an error is where it was set."""
        from trials import ConfigError, TrialConfig

        try:
            return TrialConfig.pick_model(values)
        except ConfigError as err:
            raise self.trial_error(err, where) from None

    def build_trial(self, values: dict, where: dict[str, str], context: str = ""):
        """The TrialConfig of `values` (its one validation); an error points at the key that set the value."""
        from trials import ConfigError, TrialConfig

        try:
            return TrialConfig.from_dict(values)
        except ConfigError as err:
            raise self.trial_error(err, where, context) from None

    def trial_error(self, err, where: dict[str, str], context: str = "") -> SpecError:
        suffix = f" ({context})" if context else ""
        if err.key is None:
            return SpecError(f"{self.source}: trial {err}{suffix}")
        loc = where.get(err.key, f"trial.{err.key}")
        text = strip_key(str(err), err.key) if loc.endswith(f".{err.key}") else str(err)
        if loc.startswith(("--", "$")):  # --data-dir, $TOKENSWEEP_DATA: no file line to point at
            return SpecError(f"{loc}: {err}{suffix}")
        return self.err(loc, f"{text}{suffix}")

    def require_data(self, values: dict, where: dict[str, str]) -> None:
        from trials import TrialConfig

        dataset = values.get("dataset", TrialConfig.dataset)
        if dataset != "tiny" and "data_dir" not in values:
            key = where.get("dataset", "trial.dataset")
            raise self.err(key, f"is {dataset!r} but no data path is set: pass --data-dir DIR or set ${DATA_ENV}")
