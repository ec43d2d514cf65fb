"""What a sweep resolved: the two or three lines `tokensweep run` ends with.

A difference between two architectures' throughput, or two configurations' top-1, is *resolved* when
their 95% intervals do not overlap and *within noise* when they do (the dashboard's "within noise of
the front" reads intervals the same way). Throughput intervals are the bench's (order statistics of
the median over repeats); top-1 intervals are Student t over a configuration's seeds
(dashboards.stats). One seed per configuration gives no top-1 interval, and the line says so.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from dashboards.stats import summarize

MAX_PAIRS = 3  # within-noise pairs named per line; the rest are counted
SEEDS_HINT = "[sweep] seeds = [0, 1, 2]"
CONFIRM_HINT = "[search] confirm_seeds = [0, 1, 2]"


@dataclass(frozen=True)
class Estimate:
    label: str
    value: float
    low: float
    high: float


def overlaps(a: Estimate, b: Estimate) -> bool:
    return a.low <= b.high and b.low <= a.high


def compare(estimates: list[Estimate]) -> tuple[list[tuple], list[tuple]]:
    """(resolved pairs (better, worse), within-noise pairs), in the estimates' order."""
    resolved, noise = [], []
    for a, b in itertools.combinations(estimates, 2):
        if overlaps(a, b):
            noise.append((a, b))
        else:
            resolved.append((a, b) if a.value > b.value else (b, a))
    return resolved, noise


def pairs_text(pairs: list[tuple], sep: str) -> str:
    shown = ", ".join(f"{a.label} {sep} {b.label}" for a, b in pairs[:MAX_PAIRS])
    more = f", +{len(pairs) - MAX_PAIRS} more" if len(pairs) > MAX_PAIRS else ""
    return shown + more


def line(what: str, estimates: list[Estimate]) -> str:
    resolved, noise = compare(estimates)
    total = len(resolved) + len(noise)
    text = f"  {what}: {len(resolved)} of {total} difference(s) resolved"
    if resolved and len(resolved) <= MAX_PAIRS:
        text += f" ({pairs_text(resolved, '>')})"
    if noise:
        text += f"; within noise: {pairs_text(noise, '~')}"
    return text


def throughput_line(table: dict | None) -> str | None:
    if not table or len(table["rows"]) < 2:
        return None
    estimates = [Estimate(r["label"], r["images_per_sec"], r["ci_low"], r["ci_high"]) for r in table["rows"]]
    coverage = min(r["coverage"] for r in table["rows"])
    note = "" if coverage >= 0.95 else f", interval covers only {coverage:.0%}: raise bench.repeats to 6+"
    return line(f"images/sec (bench, {table['repeats']} repeats{note})", estimates)


def config_label(name: str) -> str:
    return re.sub(r"-seed=\d+$", "", re.sub(r"^confirm-", "", name))[:48]


def top1_line(configurations: list[tuple[str, list[float]]], seeds_hint: str = SEEDS_HINT) -> str | None:
    """configurations: (label, the top-1 of each finished seed), one per config_id."""
    groups = [(label, values) for label, values in configurations if values]
    if len(groups) < 2:
        return None
    if max(len(v) for _, v in groups) < 2:
        return f"  top-1: one seed per configuration, no interval: {seeds_hint} tells effects from noise"
    estimates, single = [], 0
    for label, values in groups:
        s = summarize(values)
        if s.has_interval:
            estimates.append(Estimate(label, s.mean, s.low, s.high))
        else:
            single += 1
    n = sorted({len(v) for _, v in groups if len(v) > 1})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
    text = line(f"top-1 ({seeds} seeds, Student t)", estimates) if len(estimates) > 1 else None
    if text and single:
        text += f"; {single} single-seed configuration(s) left out"
    return text


def findings(table: dict | None, configurations: list[tuple[str, list[float]]], seeds_hint: str = SEEDS_HINT) -> list[str]:
    lines = [x for x in (throughput_line(table), top1_line(configurations, seeds_hint)) if x]
    if not lines:
        return []
    return ["differences (resolved: 95% intervals apart; within noise: they overlap):", *lines]
