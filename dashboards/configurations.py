"""Runs grouped into configurations: every seed of one configuration shares its `config_id`.

A run without a `config_id` (a sweep without replicates, an older export) is a configuration of
its own (n = 1). Each metric of a configuration is summarised over its seeds (dashboards.stats),
except the bench throughput: the bench measures an architecture once for all its seeds, so its
interval is the bench's own (`bench_images_per_sec_ci_low/_high`), not a spread over seeds, and
its differences come from the bench's repeats (`vocab.BENCH_REPEATS`) when the runs table has them.
"""

import math
import os
import re
from collections import Counter
from collections.abc import Iterable

import pyarrow as pa

import vocab
from vocab.values import is_number
from dashboards.runs import KIND, metric_columns, param_columns, sorted_rows
from dashboards.stats import Summary, summarize

BENCH = "bench_images_per_sec"
BENCH_LOW, BENCH_HIGH = f"{BENCH}_ci_low", f"{BENCH}_ci_high"
BENCH_METHOD = "bench: 95% interval of the median over repeats"
STAT_SUFFIXES = ("mean", "sd", "ci_low", "ci_high")
DEVICE_HOURS = "device_hours"
SUMMED = (DEVICE_HOURS, "planned_device_hours")  # what a configuration cost: the sum over its seeds, as `METRIC_sum`


def config_key(run: dict) -> str:
    return run.get("config_id") or run["run_id"]


def group(runs: Iterable[dict]) -> dict[str, list[dict]]:
    """Runs by configuration, in the order each configuration first appears."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(config_key(run), []).append(run)
    return groups


def swept(runs: list[dict], params: list[str]) -> list[str]:
    """Params whose value varies across `runs` (embedding always: it is what the sweep is about)."""
    names = []
    for name in params:
        values = {repr(r.get(name)) for r in runs if r.get(name) is not None}
        if len(values) > 1 or (name == "embedding" and values):
            names.append(name)
    return names


SEED_SUFFIX = re.compile(r"[-_.,= ]*(seed|s)?[-_.,= ]*$")


def _described(runs: list[dict], swept_params: list[str]) -> str:
    """The configuration's embedding and the swept values its seeds share (not the seed)."""
    shared = [p for p in swept_params if p not in ("seed", "model", "embedding")
              and runs[0].get(p) is not None and len({repr(r.get(p)) for r in runs}) == 1]  # fmt: skip
    return " ".join([str(runs[0].get("embedding") or "configuration")] + [f"{p}={runs[0].get(p)}" for p in shared])


def name(runs: list[dict], swept_params: list[str]) -> str:
    """The run name when there is one seed (or all share it); else the seeds' common name without
    its seed suffix ("st-3-s0", "st-3-s1" -> "st-3"), or the values that define the configuration."""
    names = [r.get("run_name") or r["run_id"] for r in runs]
    if len(set(names)) == 1:
        return names[0]
    common = SEED_SUFFIX.sub("", os.path.commonprefix(names))
    return common or _described(runs, swept_params)


def names(groups: list[list[dict]], swept_params: list[str]) -> list[str]:
    """A name per configuration; any name two configurations would share becomes their values."""
    first = [name(runs, swept_params) for runs in groups]
    taken = Counter(first)
    return [n if taken[n] == 1 else _described(runs, swept_params) for n, runs in zip(first, groups)]


def metric_summary(runs: list[dict], metric: str) -> Summary | None:
    """The metric over the runs that have it; for the bench figure, the bench's own interval."""
    values = [r[metric] for r in runs if is_number(r.get(metric))]
    if metric != BENCH:
        return summarize(values)
    if not values:
        return None
    lows = [r[BENCH_LOW] for r in runs if is_number(r.get(BENCH_LOW))]
    highs = [r[BENCH_HIGH] for r in runs if is_number(r.get(BENCH_HIGH))]
    plain = summarize(values)
    low, high = (min(lows), max(highs)) if lows and highs else (None, None)
    return Summary(plain.n, plain.mean, plain.sd, low, high, BENCH_METHOD, *_bench_repeats(runs))


def _bench_repeats(runs: list[dict]) -> tuple[tuple[float, ...] | None, str | None]:
    """The repeats the bench figure came from (every seed of an architecture shares them) and the bench's id."""
    for run in runs:
        if run.get(vocab.BENCH_REPEATS):
            return tuple(float(v) for v in run[vocab.BENCH_REPEATS]), run.get("bench_id") or "bench"
    return None, None


def total(runs: list[dict], metric: str) -> float | None:
    """The metric summed over the runs that have it (None: none has it)."""
    values = [r[metric] for r in runs if is_number(r.get(metric))]
    return float(sum(values)) if values else None


def _common(runs: list[dict], column: str):
    values = {repr(r.get(column)): r.get(column) for r in runs}
    return next(iter(values.values())) if len(values) == 1 else None


def _stat_fields(metrics: list[str]) -> list[pa.Field]:
    fields = []
    for metric in metrics:
        for suffix in STAT_SUFFIXES:
            fields.append(pa.field(f"{metric}_{suffix}", pa.float64(), metadata={KIND: b"stat", b"metric": metric.encode()}))
    return fields


def _finished(table: pa.Table) -> list[dict]:
    return [r for r in sorted_rows(table) if (r.get("status") or "").upper() == "FINISHED"]


def configurations_table(runs: pa.Table) -> pa.Table:
    """One row per configuration of the FINISHED runs: config_id, name, n, run_ids, the params every
    seed shares (not `seed`), for each metric its mean, sd and 95% interval over the seeds, and for
    each cost (SUMMED) its sum."""
    rows = _finished(runs)
    params = [p for p in param_columns(runs.schema) if p != "seed"]
    metrics = [m for m in metric_columns(runs) if m not in (BENCH_LOW, BENCH_HIGH)]
    swept_params = swept(rows, params)
    summed = [m for m in SUMMED if m in metrics]
    schema = pa.schema(
        [
            pa.field("config_id", pa.string()),
            pa.field("name", pa.string()),
            pa.field("n", pa.int64()),
            pa.field("run_ids", pa.list_(pa.string())),
            *[runs.schema.field(p) for p in params],
            *_stat_fields(metrics),
            *[pa.field(f"{m}_sum", pa.float64(), metadata={KIND: b"stat", b"metric": m.encode()}) for m in summed],
        ],
        metadata=runs.schema.metadata,
    )
    out = []
    groups = group(rows)
    for (key, group_runs), config_name in zip(groups.items(), names(list(groups.values()), swept_params)):
        row = {"config_id": key, "name": config_name, "n": len(group_runs),
               "run_ids": [r["run_id"] for r in group_runs]}  # fmt: skip
        row.update({p: _common(group_runs, p) for p in params})
        for metric in metrics:
            summary = metric_summary(group_runs, metric)
            stats = (None,) * 4 if summary is None else (summary.mean, summary.sd, summary.low, summary.high)
            row.update({f"{metric}_{s}": _float(v) for s, v in zip(STAT_SUFFIXES, stats)})
        row.update({f"{m}_sum": total(group_runs, m) for m in summed})
        out.append(row)
    return pa.Table.from_pylist(out, schema=schema)


def _float(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
