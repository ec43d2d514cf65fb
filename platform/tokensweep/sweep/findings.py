"""What a sweep resolved: the lines `tokensweep run` ends with.

A difference between two architectures' throughput, or two configurations' top-1, is *resolved* when
the 95% interval of the difference excludes 0 (dashboards.stats: the rule the dashboard and
`tokensweep report` use too). Throughput differences are paired over the bench's repeats; top-1
differences are Welch's over a configuration's seeds. One seed per configuration gives no top-1
interval, and the line says so. A few pairs are named; `tokensweep report` lists every one.
"""

from __future__ import annotations

import re

from dashboards.differences import THROUGHPUT, TOP1, Config, PairDifference, metric_differences, pairs
from dashboards.stats import PAIRED, UNADJUSTED, WELCH, Summary, summarize

MAX_PAIRS = 3  # pairs named per kind (resolved, unresolved); `tokensweep report` lists them all
SEEDS_HINT = "[sweep] seeds = [0, 1, 2]"
CONFIRM_HINT = "[search] confirm_seeds = [0, 1, 2]"


def named(pairs_: list[PairDifference], sep: str) -> str:
    return ", ".join(f"{p.a} {sep} {p.b}" for p in pairs_[:MAX_PAIRS]) + (" ..." if len(pairs_) > MAX_PAIRS else "")


def _ordered(p: PairDifference) -> PairDifference:
    """The better configuration first."""
    return p if p.difference.mean >= 0 else PairDifference(p.metric, p.b, p.a, p.difference)


def line(what: str, configs: list[Config], metric: str, sweep: str) -> str:
    diffs = [d for d in metric_differences(configs, metric, pairs([c.name for c in configs]))
             if d.difference.resolved is not None]  # fmt: skip
    resolved = [_ordered(d) for d in diffs if d.resolved]
    unresolved = [d for d in diffs if not d.resolved]
    text = f"  {what}: {len(resolved)} of {len(diffs)} difference(s) resolved"
    if resolved:
        text += f" ({named(resolved, '>')})"
    if unresolved:
        text += f"; unresolved: {named(unresolved, '~')}"
    if len(resolved) > MAX_PAIRS or len(unresolved) > MAX_PAIRS:
        text += f"; every pair: tokensweep report {sweep}"
    return text


def bench_summary(row: dict, bench_id: str) -> Summary:
    repeats = tuple(row["repeat_images_per_sec"])
    return Summary(len(repeats), row["images_per_sec"], None, row["ci_low"], row["ci_high"], PAIRED, repeats, bench_id)


def throughput_line(table: dict | None, sweep: str) -> str | None:
    if not table or len(table["rows"]) < 2:
        return None
    bench_id = table.get("bench_id") or "bench"
    configs = [Config(r["label"], [], {THROUGHPUT: bench_summary(r, bench_id)}) for r in table["rows"]]
    return line(f"images/sec (bench, {table['repeats']} repeats, {PAIRED})", configs, THROUGHPUT, sweep)


def config_label(name: str) -> str:
    return re.sub(r"-seed=\d+$", "", re.sub(r"^confirm-", "", name))[:48]


def top1_line(configurations: list[tuple[str, list[float]]], sweep: str, seeds_hint: str = SEEDS_HINT) -> str | None:
    """configurations: (label, the top-1 of each finished seed), one per config_id."""
    groups = [(label, values) for label, values in configurations if values]
    if len(groups) < 2:
        return None
    if max(len(v) for _, v in groups) < 2:
        return f"  top-1: one seed per configuration, no interval: {seeds_hint} tells effects from noise"
    replicated = [Config(label, [], {TOP1: summarize(values)}) for label, values in groups if len(values) > 1]
    single = len(groups) - len(replicated)
    n = sorted({c.summaries[TOP1].n for c in replicated})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
    text = line(f"top-1 ({seeds} seeds, {WELCH})", replicated, TOP1, sweep) if len(replicated) > 1 else None
    if text and single:
        text += f"; {single} single-seed configuration(s) left out"
    return text


def findings(table: dict | None, configurations: list[tuple[str, list[float]]], seeds_hint: str = SEEDS_HINT,
             sweep: str = "SWEEP") -> list[str]:  # fmt: skip
    lines = [x for x in (throughput_line(table, sweep), top1_line(configurations, sweep, seeds_hint)) if x]
    if not lines:
        return []
    return [f"differences (resolved: the 95% interval of the difference excludes 0; {UNADJUSTED}):", *lines]
