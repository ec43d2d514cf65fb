"""[grid] and [[variants]]: the cartesian product of options plus explicit trials, each validated."""

from __future__ import annotations

import itertools
import json
import typing

from tokensweep.spec.checks import jsonable
from tokensweep.spec.model import SUPERTOKEN_ONLY, TRIAL_NAME_RE, TrialVariant
from tokensweep.spec.names import auto_trial_name, fmt_value

if typing.TYPE_CHECKING:
    from tokensweep.spec.validate import Validator


def build_grid(checker: Validator, base: dict, base_where: dict) -> dict:
    grid = checker.table("grid")
    checker.check_trial_keys("grid", grid)
    if "grid" in checker.doc and not grid and "variants" not in checker.doc:
        raise checker.err("grid", "is empty: give at least one option with a list of values (empty search space)")
    axes = []
    for key, values in grid.items():
        if not isinstance(values, list):
            raise checker.err(f"grid.{key}", f"must be a list of values to sweep, got {values!r}")
        if not values:
            raise checker.err(f"grid.{key}", "is an empty list (empty search space)")
        if key == "channels" and not all(isinstance(v, list) for v in values):
            raise checker.err("grid.channels", f"must be a list of channel lists, e.g. [[16,32,32,64,64,64]], got {values!r}")
        axes.append((key, values))

    variants_doc = checker.doc.get("variants", [])
    if not isinstance(variants_doc, list) or not all(isinstance(v, dict) for v in variants_doc):
        raise checker.err("variants", "must be an array of tables ([[variants]])")
    if "variants" in checker.doc and not variants_doc and not axes:
        raise checker.err("variants", "is empty (empty search space)")

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
            context = ", ".join(f"{k}={fmt_value(v)}" for k, v in zip(keys, combo))
            candidates.append((values, where, set(), None, keys, context))
    for i, entry in enumerate(variants_doc):
        checker.check_trial_keys(f"variants[{i}]", entry, extra=("name",))
        values = dict(base)
        where = dict(base_where)
        explicit = set()
        name = entry.get("name")
        if name is not None and (not isinstance(name, str) or not TRIAL_NAME_RE.match(name)):
            raise checker.err(
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
        checker.model_of(values, where)
    embeddings = {checker.resolve_model(v["model"]).embedding for v, *_ in candidates}
    has_st = "supertoken" in embeddings

    variants: list[TrialVariant] = []
    seen: dict[str, str] = {}
    names: set[str] = set()
    for values, where, explicit, name, keys, context in candidates:
        emb = checker.resolve_model(values["model"]).embedding
        if emb != "supertoken":
            for k in SUPERTOKEN_ONLY:
                if k in values and values[k] is not None:
                    if k in explicit or not has_st:
                        raise checker.err(
                            where[k],
                            f"applies only to supertoken models, but model {values['model']!r} has a {emb} embedding",
                        )
                    del values[k]
        checker.require_data(values, where)
        checker.validate_trial(values, where, context)
        fingerprint = json.dumps(jsonable(values), sort_keys=True)
        if fingerprint in seen:
            continue
        trial_name = name or auto_trial_name(values, [k for k in keys if k in values or k == "embedding"])
        base_name, n = trial_name, 2
        while trial_name in names:
            trial_name, n = f"{base_name}-{n}", n + 1
        names.add(trial_name)
        seen[fingerprint] = trial_name
        variants.append(TrialVariant(trial_name, jsonable(values)))
    return dict(search="grid", base=jsonable(base), variants=tuple(variants))

# -- optuna --
