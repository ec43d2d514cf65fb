"""The paper's tables beside this sweep's measurements of the same configurations, with uncertainty.

A run matches a paper row on its embedding and the knobs that define the row, whatever its
backbone: the super-token widths match when they are the paper's 16-32-32-64-64-64 or a uniform
scaling of them (the tiny backbone's 8-16-16-32-32-32). Matches are split by backbone, and each
row shows the paper's number beside this sweep's mean ± 95% interval (n). The differences the
paper draws between rows get the 95% interval of the difference (dashboards.stats).
"""

import re
from dataclasses import dataclass

from vocab.values import is_number
from dashboards import configurations, paper, stats
from dashboards.configurations import BENCH, metric_summary
from dashboards.runs import backbone
from dashboards.style import with_interval



@dataclass(frozen=True)
class ComparisonTable:
    title: str
    note: str
    headers: list[str]
    rows: list[list[str]]
    kinds: list[str]  # per row: "row" (a paper row) or "difference"


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "M":
        return f"{value / 1e6:.2f}M"
    if unit == "img/s":
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _signed(value: float, unit: str) -> str:
    return ("+" if value >= 0 else "−") + format_value(abs(value), unit)


def _channels(value) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(value)))


def same_widths(have, want) -> bool:
    """The same channel pattern: equal, or every width scaled by one factor (8-16-16-32-32-32 is half of 16-32-...)."""
    a, b = _channels(have), _channels(want)
    return len(a) == len(b) > 0 and all(x * b[0] == y * a[0] for x, y in zip(a, b))


def _run_value(run: dict, key: str):
    """A run's value for a matched column; null means the model default (the paper's proposal)."""
    value = run.get(key)
    if value is None and run.get("embedding") == "supertoken":
        value = paper.PROPOSED.get(key)
    return value


def matches(run: dict, match: dict) -> bool:
    for key, want in match.items():
        have = _run_value(run, key)
        if key == "channels":
            if have is None or not same_widths(have, want):
                return False
        elif have != want:
            return False
    return True


def _by_backbone(runs: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(backbone(run) or "?", []).append(run)
    return dict(sorted(groups.items()))


def _figure(metric: str, runs: list[dict]) -> str:
    """The bench's throughput in place of the in-trial one when every matching run has it."""
    if metric == "images_per_sec" and runs and all(is_number(r.get(BENCH)) for r in runs):
        return BENCH
    return metric


def _summary(runs: list[dict], metric: str) -> stats.Summary | None:
    return metric_summary(runs, _figure(metric, runs))


def _describe(runs: list[dict]) -> str:
    """What the matching runs were measured on: the paper's setting differs, and that matters."""
    if not runs:
        return "no matching run"

    def distinct(fmt) -> str:
        return "/".join(sorted({fmt(r) for r in runs}))

    configs = len(configurations.group(runs))
    parts = [
        f"{len(runs)} run{'s' if len(runs) > 1 else ''}",
        distinct(lambda r: str(r.get("model") or "?")),
        distinct(lambda r: str(r.get("dataset") or "?")),
        distinct(lambda r: f"{r.get('epochs') or '?'} ep"),
        distinct(lambda r: f"{r.get('device') or '?'} {r.get('precision') or ''}".strip()),
    ]
    if configs > 1:
        parts.append(f"{configs} configurations pooled")
    if any(_figure("images_per_sec", [r]) == BENCH for r in runs):
        parts.append("throughput: bench")
    return ", ".join(parts)


def _difference_text(a: list[dict], b: list[dict], metric: str, unit: str) -> str:
    sa, sb = _summary(a, metric), _summary(b, metric)
    if sa is None or sb is None:
        return "–"
    diff = stats.difference(sa, sb)
    text = _signed(diff.mean, unit)
    if diff.resolved is None:
        return f"{text} (n={sa.n} vs {sb.n}: no interval of the difference)"
    if diff.low == diff.high:
        return f"{text} (no spread)"
    verdict = ", resolved" if diff.resolved else ", not resolved"
    return f"{text} [{_signed(diff.low, unit)}, {_signed(diff.high, unit)}]{verdict}"


def _paper_difference(table: paper.Table, compared: paper.Compared, metric: str) -> float | None:
    a, b = table.rows[compared.a].values.get(metric), table.rows[compared.b].values.get(metric)
    return None if a is None or b is None else a - b


def compare(table: paper.Table, runs: list[dict]) -> ComparisonTable:
    """One paper table: per row and backbone, the paper's value beside this sweep's mean ± CI (n) over
    matching FINISHED runs; then the differences the paper draws, with the interval of each difference."""
    finished: dict[str, list[dict]] = {}  # by embedding: a row only looks at its own embedding's runs
    for run in runs:
        if (run.get("status") or "").upper() == "FINISHED":
            finished.setdefault(run.get("embedding"), []).append(run)
    paper_rows = [*table.rows, *_own_embeddings(table, finished)]
    headers = ["configuration", "backbone"]
    for column in table.columns:
        headers += [f"{column.label} (paper)", f"{column.label} (this sweep)"]
    headers.append("this sweep's runs")
    matched = [_by_backbone([r for r in finished.get(row.match["embedding"], []) if matches(r, row.match)])
               for row in paper_rows]  # fmt: skip
    rows, kinds = [], []
    for paper_row, by_backbone in zip(paper_rows, matched):
        for name, group in by_backbone.items() or [("–", [])]:
            cells = [paper_row.label, name]
            for column in table.columns:
                cells.append(format_value(paper_row.values.get(column.metric), column.unit))
                cells.append(with_interval(_summary(group, column.metric), fmt=lambda v, u=column.unit: format_value(v, u)))
            rows.append([*cells, _describe(group)])
            kinds.append("row")
    for compared in table.differences:
        both = [name for name in matched[compared.a] if name in matched[compared.b]]
        for name in both:
            cells = [compared.label, name]
            for column in table.columns:
                ours = _difference_text(matched[compared.a][name], matched[compared.b][name], column.metric, column.unit)
                theirs = _paper_difference(table, compared, column.metric)
                cells += ["–" if theirs is None else _signed(theirs, column.unit), ours]
            rows.append([*cells, "difference of the two rows; 95% interval of the difference"])
            kinds.append("difference")
    note = ("This sweep: mean ± 95% Student t interval over its finished runs of the same configuration (n runs); "
            f"differences: the 95% interval of the difference ({stats.WELCH}; throughput from the bench: {stats.PAIRED}), "
            f"'resolved' when it excludes 0, {stats.UNADJUSTED}. " + table.note)  # fmt: skip
    return ComparisonTable(f"Table {table.number}: {table.title}", note.strip(), headers, rows, kinds)


def _own_embeddings(table: paper.Table, finished: dict[str, list[dict]]) -> list[paper.Row]:
    """A row per embedding of the sweep that the paper has no row for (a user's own), in a by-embedding table."""
    if not table.by_embedding:
        return []
    known = {row.match["embedding"] for row in table.rows}
    return [paper.Row(f"{e} (this sweep only)", {"embedding": e}, {}) for e in sorted(set(finished) - known, key=str)]


def compare_all(runs: list[dict]) -> list[ComparisonTable]:
    return [compare(t, runs) for t in paper.TABLES]


def seeds_note(runs: list[dict]) -> str:
    """About how many seeds would resolve the paper's headline difference, from this sweep's seed spread."""
    table, compared, metric = paper.CLAIM
    claim = _paper_difference(table, compared, metric)
    finished = [r for r in runs if (r.get("status") or "").upper() == "FINISHED"]
    summaries = [metric_summary(group, metric) for group in configurations.group(finished).values()]
    replicated = [s for s in summaries if s is not None and s.sd is not None]
    sd = stats.pooled_sd(replicated)
    head = f"The paper's {_signed(claim, '%')}-point {metric} difference ({compared.label}, Table {table.number})"
    if sd is None:
        return f"{head}: no configuration of this sweep has two seeds, so its seed spread is unknown."
    if sd == 0:
        return f"{head}: this sweep's seeds agree exactly (standard deviation 0): two seeds would resolve it."
    half = stats.seeds_to_resolve(sd, claim)
    likely = stats.seeds_to_resolve(sd, claim, stats.Z_80_POWER)
    return (
        f"{head}: about {half} seeds per configuration make its 95% interval narrower than {claim:.2f} (a true "
        f"difference of that size is then resolved about half the time), about {likely} for an 80% chance. Normal "
        f"approximation: half-width 1.96·s·√(2/n), with s = {sd:.2f}, the seed-to-seed standard deviation of {metric} "
        f"pooled over this sweep's {len(replicated)} replicated configurations."
    )
