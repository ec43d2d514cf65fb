"""The paper's tables beside this sweep's measurements of the same configurations."""

import re
from dataclasses import dataclass

from dashboards import paper
from dashboards.runs import finite


@dataclass(frozen=True)
class ComparisonTable:
    title: str
    note: str
    headers: list[str]
    rows: list[list[str]]


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "M":
        return f"{value / 1e6:.2f}M"
    if unit == "img/s":
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _channels(value) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(value)))


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
            if have is None or _channels(have) != _channels(want):
                return False
        elif have != want:
            return False
    return True


def _mean(runs: list[dict], metric: str) -> float | None:
    values = [r[metric] for r in runs if finite(r.get(metric))]
    return sum(values) / len(values) if values else None


def _describe(runs: list[dict]) -> str:
    """What the matching runs were measured on: the paper's setting differs, and that matters."""
    if not runs:
        return "no matching run"

    def distinct(fmt) -> str:
        return "/".join(sorted({fmt(r) for r in runs}))

    parts = [
        f"{len(runs)} run{'s' if len(runs) > 1 else ''}",
        distinct(lambda r: str(r.get("model") or "?")),
        distinct(lambda r: str(r.get("dataset") or "?")),
        distinct(lambda r: f"{r.get('epochs') or '?'} ep"),
        distinct(lambda r: f"{r.get('device') or '?'} {r.get('precision') or ''}".strip()),
    ]
    return ", ".join(parts)


def compare(table: paper.Table, runs: list[dict]) -> ComparisonTable:
    """One paper table with a 'this sweep' column per value: the mean over matching FINISHED runs."""
    finished = [r for r in runs if (r.get("status") or "").upper() == "FINISHED"]
    headers = ["configuration"]
    for column in table.columns:
        headers += [f"{column.label} (paper)", f"{column.label} (this sweep)"]
    headers.append("this sweep's runs")
    rows = []
    for paper_row in table.rows:
        matching = [r for r in finished if matches(r, paper_row.match)]
        cells = [paper_row.label]
        for column in table.columns:
            cells.append(format_value(paper_row.values.get(column.metric), column.unit))
            cells.append(format_value(_mean(matching, column.metric), column.unit))
        cells.append(_describe(matching))
        rows.append(cells)
    note = "This sweep: mean over its finished runs of the same configuration. " + table.note
    return ComparisonTable(f"Table {table.number}: {table.title}", note.strip(), headers, rows)


def compare_all(runs: list[dict]) -> list[ComparisonTable]:
    return [compare(t, runs) for t in paper.TABLES]
