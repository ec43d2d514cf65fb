"""[search]: an Optuna search space, every range checked at both ends against the real TrialConfig."""

from __future__ import annotations

import vocab
from tokensweep.payload import INDEXED, apply_search_values, fmt_value
from tokensweep.spec.context import SpecContext, jsonable, root_key, suggest
from tokensweep.spec.grid import with_platform
from tokensweep.spec.model import MODES, PARAM_KEYS, SearchParam, section_keys
from vocab.values import is_int, is_number

NOT_SEARCHABLE = ("model", "embedding", "backbone", "dataset", "data_dir", "device")


def build_search(checker: SpecContext, base: dict, base_where: dict, platform: dict) -> dict:
    search = checker.table("search")
    checker.check_keys("search", search, section_keys("search"))
    algorithm = search.get("algorithm")
    if algorithm is None:
        raise checker.err("search", '[search] needs algorithm = "optuna"')
    if algorithm != "optuna":
        raise checker.err("search.algorithm", f'must be "optuna", got {algorithm!r}{suggest(algorithm, ["optuna"])}')
    got = checker.section("search")
    num_samples, seed, confirm = got["num_samples"], got["seed"], got["confirm_seeds"]

    objectives_doc = search.get("objectives")
    if objectives_doc is None:
        raise checker.err("search", "[search] needs objectives, e.g. objectives = { top1 = \"max\", images_per_sec = \"max\" }")
    if not isinstance(objectives_doc, dict) or not objectives_doc:
        raise checker.err("search.objectives", f"must be a non-empty table metric = \"max\"|\"min\", got {objectives_doc!r}")
    all_metrics = vocab.EPOCH_METRICS + vocab.MEASURED_METRICS  # what a trial reports (not what the sweep adds later)
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

    where = dict(base_where)
    base = with_platform(base, platform)
    base["model"] = checker.pick_model(base, where)
    base = {k: v for k, v in base.items() if k not in ("embedding", "backbone")}
    checker.require_data(base, where)
    params = [search_param(checker, key, spec, base) for key, spec in params_doc.items()]
    # every objective must be in the last report
    if not base.get("measure", True):
        for metric, _ in objectives:
            if metric in vocab.MEASURED_METRICS:
                raise checker.err(
                    "trial.measure", f"is false, but objective {metric!r} is only measured when trial.measure = true"
                )
    # every end of every range (and every choice) against the real TrialConfig, then all together
    checker.build_trial(base, where)
    for p in params:
        p_where = {**where, root_key(p.key): f"search.params.{p.key}"}
        for value in p.choices or (p.low, p.high):
            checker.build_trial(apply_search_values(base, {p.key: value}), p_where, f"at {p.key} = {value!r}")
    for corner in ("low", "high"):
        values = apply_search_values(base, {p.key: _corner(p, corner) for p in params})
        checker.build_trial(values, where, f"with every search param at its {corner} end")
    return dict(
        search="optuna",
        base=jsonable(base),
        params=tuple(params),
        num_samples=num_samples,
        seed=seed,
        objectives=tuple(objectives),
        confirm_seeds=confirm,
    )


def search_param(checker: SpecContext, key: str, spec, base: dict) -> SearchParam:
    from trials import TrialConfig
    from trials.models import knob_owners, registered_embeddings, split_model_name

    full = f"search.params.{key}"
    m = INDEXED.match(key)
    root = m["key"] if m else key
    searchable = sorted(TrialConfig.option_names() - set(NOT_SEARCHABLE))
    if root not in searchable:
        raise checker.err(full, f"is not a searchable trial option{suggest(root, searchable)}")
    embedding = registered_embeddings()[split_model_name(base["model"])[1]]
    owners = knob_owners(root)
    if owners and embedding.knob(root) is None:
        raise checker.err(full, f"applies only to {'/'.join(owners)} models, but model {base['model']!r} has a {embedding.name} embedding")
    if m:
        knob = embedding.knob(root)
        if knob is None or knob.type is not tuple:
            raise checker.err(full, "only the elements of a tuple knob (e.g. channels[i]) may be indexed")
        if int(m["index"]) >= knob.length:
            last = knob.length - 1
            raise checker.err(full, f"index {m['index']} is out of range: {root} has {knob.length} elements ({root}[0]..{root}[{last}])")
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
        if not is_number(spec[k]):
            raise checker.err(f"{full}.{k}", f"must be a number, got {spec[k]!r}")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise checker.err(f"{full}.log", f"must be true or false, got {log!r}")
    integers = is_int(low) and is_int(high) and (step is None or is_int(step))
    if low > high:
        raise checker.err(full, f"low ({low}) is greater than high ({high}): empty search space")
    if step is not None:
        if not is_number(step) or step <= 0:
            raise checker.err(f"{full}.step", f"must be a number > 0, got {step!r}")
        if log:
            raise checker.err(full, "step and log = true cannot be combined (Optuna does not support it)")
    if log and low <= 0:
        raise checker.err(f"{full}.low", f"must be > 0 when log = true, got {low!r}")
    return SearchParam(key, "int" if integers else "float", low=low, high=high, step=step, log=log)


def _corner(p: SearchParam, which: str):
    if p.kind == "choice":
        return p.choices[0] if which == "low" else p.choices[-1]
    return p.low if which == "low" else p.high
