"""[search]: an Optuna search space, checked at both ends of every range; and applying its suggestions."""

from __future__ import annotations

import typing

from tokensweep.spec.checks import is_int, is_num, jsonable, root_key, suggest
from tokensweep.spec.model import (
    EPOCH_METRICS,
    FINAL_METRICS,
    INDEXED,
    MEASURED_METRICS,
    MODES,
    PARAM_KEYS,
    SECTION_KEYS,
    SUPERTOKEN_ONLY,
    SearchParam,
)
from tokensweep.spec.names import fmt_value

if typing.TYPE_CHECKING:
    from tokensweep.spec.validate import Validator


def build_search(checker: Validator, base: dict, base_where: dict) -> dict:
    search = checker.table("search")
    checker.check_keys("search", search, SECTION_KEYS["search"])
    algorithm = search.get("algorithm")
    if algorithm is None:
        raise checker.err("search", '[search] needs algorithm = "optuna"')
    if algorithm != "optuna":
        raise checker.err("search.algorithm", f'must be "optuna", got {algorithm!r}{suggest(algorithm, ["optuna"])}')
    num_samples = checker.int_opt("search", search, "num_samples", 10, 1, 100_000)
    seed = checker.int_opt("search", search, "seed", None, 0)

    objectives_doc = search.get("objectives")
    if objectives_doc is None:
        raise checker.err("search", "[search] needs objectives, e.g. objectives = { top1 = \"max\", images_per_sec = \"max\" }")
    if not isinstance(objectives_doc, dict) or not objectives_doc:
        raise checker.err("search.objectives", f"must be a non-empty table metric = \"max\"|\"min\", got {objectives_doc!r}")
    all_metrics = EPOCH_METRICS + FINAL_METRICS
    objectives = []
    for metric, mode in objectives_doc.items():
        if metric not in all_metrics:
            raise checker.err(
                f"search.objectives.{metric}",
                f"unknown metric {metric!r}{suggest(metric, all_metrics)}; choose one of: {', '.join(all_metrics)}",
            )
        if mode not in MODES:
            raise checker.err(f"search.objectives.{metric}", f'must be "max" or "min", got {mode!r}')
        objectives.append((metric, mode))

    params_doc = search.get("params")
    if not isinstance(params_doc, dict) or not params_doc:
        raise checker.err("search.params" if "params" in search else "search", "has no params: the search space is empty")

    base = dict(base)
    where = dict(base_where)
    checker.model_of(base, where)
    checker.require_data(base, where)
    emb = checker.resolve_model(base["model"]).embedding
    params = []
    for key, spec in params_doc.items():
        params.append(search_param(checker, key, spec, base, emb))
    # every objective must be in the last report
    if not base.get("measure", True):
        for metric, _ in objectives:
            if metric in MEASURED_METRICS:
                raise checker.err(
                    "trial.measure", f"is false, but objective {metric!r} is only measured when trial.measure = true"
                )
    # every end of every range (and every choice) against the real TrialConfig, then all together
    checker.validate_trial(base, where)
    for p in params:
        p_where = {**where, root_key(p.key): f"search.params.{p.key}"}
        for value in p.choices or (p.low, p.high):
            values = apply_search_values(base, {p.key: value})
            checker.validate_trial(values, p_where, f"at {p.key} = {value!r}")
    for corner in ("low", "high"):
        values = apply_search_values(base, {p.key: _corner(p, corner) for p in params})
        checker.validate_trial(values, where, f"with every search param at its {corner} end")
    return dict(
        search="optuna",
        base=jsonable(base),
        params=tuple(params),
        num_samples=num_samples,
        seed=seed,
        objectives=tuple(objectives),
    )

def search_param(checker: Validator, key: str, spec, base: dict, emb: str) -> SearchParam:
    full = f"search.params.{key}"
    m = INDEXED.match(key)
    root = m["key"] if m else key
    if root not in checker.trial_fields or root in ("model", "dataset", "data_dir", "device"):
        raise checker.err(full, f"is not a searchable trial option{suggest(root, sorted(checker.trial_fields))}")
    if root in SUPERTOKEN_ONLY and emb != "supertoken":
        raise checker.err(full, f"applies only to supertoken models, but model {base['model']!r} has a {emb} embedding")
    if m:
        if root != "channels":
            raise checker.err(full, "only channels[i] may be indexed")
        length = len(checker.resolve_model(base["model"]).channels)
        if int(m["index"]) >= length:
            raise checker.err(full, f"index {m['index']} is out of range: channels has {length} widths (channels[0]..channels[{length - 1}])")
    if root in base and not m:
        raise checker.err(full, f"is also set in [trial] ({root} = {fmt_value(base[root])}); remove one")
    if not isinstance(spec, dict):
        raise checker.err(full, f"must be a table like {{ low = 8, high = 64, step = 8 }} or {{ choices = [...] }}, got {spec!r}")
    for k in spec:
        if k not in PARAM_KEYS:
            raise checker.err(f"{full}.{k}", f"is not a parameter option{suggest(k, PARAM_KEYS)}; known: {', '.join(PARAM_KEYS)}")
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        if extra:
            raise checker.err(full, f"choices cannot be combined with {', '.join(sorted(extra))}")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise checker.err(f"{full}.choices", "must be a non-empty list (empty search space)")
        if not all(isinstance(c, (bool, int, float, str)) for c in choices):
            raise checker.err(
                f"{full}.choices", "must be numbers, strings or booleans (search list options one element at a time, e.g. channels[0])"
            )
        return SearchParam(key, "choice", choices=tuple(jsonable(c) for c in choices))
    for k in ("low", "high"):
        if k not in spec:
            raise checker.err(full, f"needs {k} (or choices = [...])")
        if not is_num(spec[k]):
            raise checker.err(f"{full}.{k}", f"must be a number, got {spec[k]!r}")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise checker.err(f"{full}.log", f"must be true or false, got {log!r}")
    integers = is_int(low) and is_int(high) and (step is None or is_int(step))
    if low > high:
        raise checker.err(full, f"low ({low}) is greater than high ({high}): empty search space")
    if step is not None:
        if not is_num(step) or step <= 0:
            raise checker.err(f"{full}.step", f"must be a number > 0, got {step!r}")
        if log:
            raise checker.err(full, "step and log = true cannot be combined (Optuna does not support it)")
    if log and low <= 0:
        raise checker.err(f"{full}.low", f"must be > 0 when log = true, got {low!r}")
    return SearchParam(key, "int" if integers else "float", low=low, high=high, step=step, log=log)

# -- scheduler --


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
