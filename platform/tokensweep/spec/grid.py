"""Readable trial names: a grid trial's from its values (an Optuna trial's: tokensweep.payload).

[grid] and [[variants]]: the cartesian product of options plus explicit trials, each validated once.

A knob (an option an embedding declares, e.g. cluster_iters) applies to the trials whose embedding
declares it and is dropped from the others; trials that become identical are merged. `seeds` runs
every configuration once per seed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

from tokensweep.payload import fmt_value
from tokensweep.spec.context import SpecContext, jsonable
from tokensweep.spec.model import TRIAL_NAME_RE, WARN_TRIALS, TrialVariant


def auto_trial_name(values: dict, keys: list[str]) -> str:
    parts = [values["model"]]
    for k in keys:
        if k in ("model", "embedding", "backbone") or k not in values:
            continue
        parts.append(f"{k}={fmt_value(values[k])}")
    return "-".join(parts)


@dataclasses.dataclass
class Candidate:
    values: dict
    where: dict  # key -> where it was set ("grid.cluster_iters")
    explicit: set  # keys a [[variants]] table set itself
    name: str | None
    keys: list  # the keys that name it
    context: str  # for error messages: "cluster_iters=3" or "variant 2"


def build_grid(ctx: SpecContext, base: dict, base_where: dict, platform: dict, seeds: tuple, max_trials: int) -> dict:
    axes = grid_axes(ctx, base)
    variants_doc = variant_tables(ctx, bool(axes))
    count = (math.prod(len(v) for _, v in axes) if axes or not variants_doc else 0) + len(variants_doc)
    count *= max(1, len(seeds))
    if count > max_trials:
        raise ctx.err(
            "grid" if "grid" in ctx.doc else "variants",
            f"expands to {count:,} trials, more than sweep.max_trials = {max_trials:,}: shrink the grid, or raise "
            f"the limit with --set sweep.max_trials={count}",
        )
    if seeds and "seed" in base:
        raise ctx.err(base_where["seed"], "is set, but sweep.seeds runs every configuration once per seed: remove one")
    candidates = list(grid_candidates(axes, base, base_where)) if axes or not variants_doc else []
    candidates += [variant_candidate(ctx, i, entry, base, base_where) for i, entry in enumerate(variants_doc)]
    variants = merge(ctx, candidates, platform)
    if seeds:
        variants = [with_seed(v, s) for v in variants for s in seeds]
    notes = (f"this sweep expands to {len(variants):,} trials",) if len(variants) > WARN_TRIALS else ()
    return dict(search="grid", base=jsonable(base), variants=tuple(variants), grid_notes=notes)


def grid_axes(ctx: SpecContext, base: dict) -> list[tuple[str, list]]:
    grid = ctx.table("grid")
    ctx.check_trial_keys("grid", grid)
    if "grid" in ctx.doc and not grid and "variants" not in ctx.doc:
        raise ctx.err("grid", "is empty: give at least one option with a list of values (empty search space)")
    from trials.models import all_knobs

    knobs = all_knobs()
    axes = []
    for key, values in grid.items():
        if not isinstance(values, list):
            raise ctx.err(f"grid.{key}", f"must be a list of values to sweep, got {values!r}")
        if not values:
            raise ctx.err(f"grid.{key}", "is an empty list (empty search space)")
        knob = knobs.get(key)
        if knob is not None and knob.type is tuple and not all(isinstance(v, list) for v in values):
            example = list(knob.default)
            raise ctx.err(f"grid.{key}", f"must be a list of {key} lists, e.g. [{example}], got {values!r}")
        if f"trial.{key}" in ctx.set_keys:
            raise ctx.err(
                f"trial.{key}", f"is also swept by grid.{key}: set the grid instead, e.g. --set 'grid.{key}=[...]'"
            )
        axes.append((key, values))
    return axes


def variant_tables(ctx: SpecContext, has_axes: bool) -> list[dict]:
    variants_doc = ctx.doc.get("variants", [])
    if not isinstance(variants_doc, list) or not all(isinstance(v, dict) for v in variants_doc):
        raise ctx.err("variants", "must be an array of tables ([[variants]])")
    if "variants" in ctx.doc and not variants_doc and not has_axes:
        raise ctx.err("variants", "is empty (empty search space)")
    return variants_doc


def grid_candidates(axes, base: dict, base_where: dict):
    keys = [k for k, _ in axes]
    for combo in itertools.product(*(v for _, v in axes)):
        values, where = dict(base), dict(base_where)
        for k, v in zip(keys, combo):
            values[k], where[k] = v, f"grid.{k}"
        yield Candidate(values, where, set(), None, keys, ", ".join(f"{k}={fmt_value(v)}" for k, v in zip(keys, combo)))


def variant_candidate(ctx: SpecContext, i: int, entry: dict, base: dict, base_where: dict) -> Candidate:
    ctx.check_trial_keys(f"variants[{i}]", entry, extra=("name",))
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not TRIAL_NAME_RE.match(name)):
        raise ctx.err(f"variants[{i}].name", f"must be 1-120 letters, digits or any of _ . = + , - (no spaces), got {name!r}")
    values, where = dict(base), dict(base_where)
    keys = [k for k in entry if k != "name"]
    for k in keys:
        values[k], where[k] = entry[k], f"variants[{i}].{k}"
    return Candidate(values, where, set(keys), name, keys, f"variant {name or i}")


def merge(ctx: SpecContext, candidates: list[Candidate], platform: dict) -> list[TrialVariant]:
    """Each candidate's knobs fitted to its embedding, validated (one TrialConfig each), duplicates merged."""
    from trials.models import registered_embeddings, split_model_name

    registry = registered_embeddings()
    for c in candidates:
        c.model = ctx.pick_model(c.values, c.where)
    declared = {k.name for c in candidates for k in registry[split_model_name(c.model)[1]].knobs}
    variants, seen, names = [], set(), set()
    for c in candidates:
        drop_foreign_knobs(ctx, c, registry, declared)
        ctx.require_data(c.values, c.where)
        values = with_platform(c.values, platform)
        values = jsonable({**{k: v for k, v in values.items() if k not in ("embedding", "backbone")}, "model": c.model})
        fingerprint = json.dumps(values, sort_keys=True)
        if fingerprint in seen:  # the same trial twice (a knob dropped from an embedding without it)
            continue
        seen.add(fingerprint)
        config = ctx.build_trial(values, c.where, c.context)
        name = c.name or auto_trial_name(values, [k for k in c.keys if k in values or k in ("embedding", "backbone")])
        unique, n = name, 2
        while unique in names:
            unique, n = f"{name}-{n}", n + 1
        names.add(unique)
        variants.append(TrialVariant(unique, values, config))
    return variants


def with_platform(values: dict, platform: dict) -> dict:
    """The platform's values (threads, gpu_shared) where the spec left them unset."""
    return {**values, **{k: v for k, v in platform.items() if values.get(k) is None}}


def drop_foreign_knobs(ctx: SpecContext, c: Candidate, registry, declared: set) -> None:
    """Knobs of other embeddings: dropped when they came from [trial]/[grid] for the trials that have them."""
    from trials.models import all_knobs, knob_owners, split_model_name

    embedding = split_model_name(c.model)[1]
    mine = {k.name for k in registry[embedding].knobs}
    knobs = all_knobs()
    for key in [k for k in c.values if k in knobs and k not in mine]:
        if c.values[key] is None:
            continue
        if key in c.explicit or key not in declared:
            owners = "/".join(knob_owners(key))
            raise ctx.err(c.where[key], f"applies only to {owners} models, but model {c.model!r} has a {embedding} embedding")
        del c.values[key]


def with_seed(variant: TrialVariant, seed: int) -> TrialVariant:
    config = dataclasses.replace(variant.config, seed=seed)  # validated again, not parsed again
    return TrialVariant(f"{variant.name}-seed={seed}", {**variant.values, "seed": seed}, config)
