"""The page's tables: configurations (means with intervals), runs (every run, whatever its state)
and the paper's tables beside this sweep's numbers.

Every run's details are in the page once: the configurations and runs tables travel as JSON data
that the page's script renders a page of rows at a time (a 10,000-row HTML table alone takes
Chromium longer to lay out than the 5 s a page may take) and writes the chart's hover text from.
A column with `hover` is shown in the chart's hover (`"title"`: its first, bold line).

    {"columns": [{"name", "hover", "numeric", "badge", "colours"}],
     "rows": [{"state", "key", "title", "cells": [text | [text, sort key]]}]}
"""

import html

import vocab
from vocab.values import is_number
from dashboards import compare, differences, style
from dashboards.analysis import Analysis, Configuration, RunPoint
from dashboards.configurations import BENCH_HIGH, BENCH_LOW, DEVICE_HOURS, total
from dashboards.runs import COLUMN_FIELDS

STATE_ORDER = {"front": 0, "noise": 1, "dominated": 2, "running": 3, "missing": 4, "killed": 5, "failed": 6}
STATE_TEXT = {"front": "★ front", "noise": "within noise", "dominated": "dominated"}
# The results a run's row shows: final measurements and the accuracies (both from vocab). Losses,
# epoch times and per-epoch throughput are training curves: MLflow shows them.
RESULT_METRICS = tuple(
    f.name for f in COLUMN_FIELDS
    if (f.kind == vocab.FINAL or (f.kind == vocab.EPOCH and f.unit == "%")) and f.name not in (BENCH_LOW, BENCH_HIGH)
)  # fmt: skip
HOVER_METRICS = ("params", "flops")  # beside the two objectives


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def column(name: str, hover: bool | str = False, numeric: bool = False, **extra) -> dict:
    return {"name": name, "hover": hover, "numeric": numeric, **extra}


def metric_cell(value, metric: str) -> list:
    return ["–", None] if not is_number(value) else [style.human(value, metric), float(value)]


def param_cell(value) -> list | str:
    if value is None or (isinstance(value, float) and not is_number(value)):
        return ["–", None]
    return [str(value), value] if is_number(value) else str(value)


def param_column(name: str, order: list[str], hover: bool = True) -> dict:
    if name == "embedding":  # a colour swatch, as in the chart
        return column(name, hover, colours={e: style.colour(e, order) for e in order})
    return column(name, hover)


def table_metrics(analysis: Analysis) -> list[str]:
    """The figure drawn on x and the y objective first, then the other results some run has."""
    first = list(dict.fromkeys([analysis.x_figure, analysis.y.metric, analysis.x.metric]))
    rest = [m for m in RESULT_METRICS if m not in first and any(is_number(p.run.get(m)) for p in analysis.points)]
    return first + rest


def _run_state_text(analysis: Analysis, point: RunPoint) -> str:
    state = analysis.run_state(point)
    if state in STATE_TEXT:
        return STATE_TEXT[state]
    return point.excluded.upper() if state in ("failed", "running", "killed") else point.excluded


def runs_table(analysis: Analysis) -> dict:
    order = style.embeddings(analysis)
    params = list(dict.fromkeys(["model", *analysis.swept_params]))
    metrics = table_metrics(analysis)
    hover_metrics = {analysis.x_figure, analysis.y.metric, *HOVER_METRICS}
    replicated = analysis.replicated
    columns = [column("state", True, badge=True), column("run", "title")]
    columns += [column("configuration", True)] if replicated else []
    columns += [param_column(p, order) for p in params]
    columns += [column(m, m in hover_metrics, numeric=True) for m in metrics]
    columns += [column("device", True), column("precision", True), column("started"), column("failure reason", True)]
    rows = []
    for p in analysis.points:
        run = p.run
        state = analysis.run_state(p)
        cells = [[_run_state_text(analysis, p), STATE_ORDER.get(state, 9)], run.get("run_name") or run["run_id"]]
        if replicated:
            config = analysis.config_of.get(run["run_id"])
            cells.append(config.name if config else "–")
        cells += [param_cell(run.get(name)) for name in params]
        cells += [metric_cell(run.get(m), m) for m in metrics]
        started = run.get("start_time")
        precision = (run.get("precision") or "–") + (" (shared GPU)" if run.get("gpu_shared") else "")
        cells += [run.get("device") or "–", precision, started.strftime("%Y-%m-%d %H:%M:%S") if started else "",
                  run.get("failure_reason") or ""]  # fmt: skip
        rows.append({"state": state, "key": run["run_id"], "title": p.excluded, "cells": cells})
    return {"columns": columns, "rows": rows}


def _summary_cell(summary, metric: str) -> list:
    if summary is None:
        return ["–", None]
    return [style.with_interval(summary, metric), summary.mean]


def configurations_table(analysis: Analysis) -> dict:
    """One row per configuration with more than one seed (a single-seed one is its run, in the runs
    table): its state on the front of the means, n, its means ± 95% intervals, and its device-hours
    (the sum over its seeds)."""
    order = style.embeddings(analysis)
    params = [p for p in dict.fromkeys(["model", *analysis.swept_params]) if p != "seed"]
    summaries = [(analysis.x_figure, lambda c: c.x), (analysis.y.metric, lambda c: c.y)]
    if "top1" not in (analysis.x_figure, analysis.y.metric):
        summaries.append(("top1", lambda c: c.top1))
    if "images_per_sec" not in (analysis.x.metric, analysis.y.metric):
        summaries.append(("images_per_sec", lambda c: c.throughput))
    columns = [column("state", True, badge=True), column("configuration", "title"), column("n", True, numeric=True)]
    columns += [param_column(p, order) for p in params] + [column(m, True, numeric=True) for m, _ in summaries]
    columns += [column(m, True, numeric=True) for m in HOVER_METRICS] + [column("device", True), column("precision", True)]
    costed = any(is_number(p.run.get(DEVICE_HOURS)) for p in analysis.points)
    columns += [column(DEVICE_HOURS, True, numeric=True)] if costed else []
    rows = []
    for config in (c for c in analysis.configurations if c.n > 1):  # the order figure.row_refs counts in
        run = config.run
        cells = [[STATE_TEXT[config.state], STATE_ORDER[config.state]], config.name, [str(config.n), config.n]]
        cells += [param_cell(run.get(p) if _shared(config, p) else None) for p in params]
        cells += [_summary_cell(pick(config), metric) for metric, pick in summaries]
        cells += [metric_cell(_mean(config, m), m) for m in HOVER_METRICS]
        cells += [run.get("device") or "–", run.get("precision") or "–"]
        cells += [metric_cell(total([p.run for p in config.points], DEVICE_HOURS), DEVICE_HOURS)] if costed else []
        rows.append({"state": config.state, "key": config.key, "title": None, "cells": cells})
    return {"columns": columns, "rows": rows}


def _shared(config: Configuration, name: str) -> bool:
    return len({repr(p.run.get(name)) for p in config.points}) == 1


def _mean(config: Configuration, metric: str) -> float | None:
    values = [p.run[metric] for p in config.points if is_number(p.run.get(metric))]
    return sum(values) / len(values) if values else None


MAX_PAGE_PAIRS = 2_000  # pairs per metric drawn in the page (63 configurations); `tokensweep report` has them all


def page_differences(analysis: Analysis) -> list[differences.PairDifference] | None:
    """Every pairwise difference of the sweep's configurations, as `tokensweep report` lists them;
    None when there are too many pairs for a page."""
    configs = differences.sweep_configurations([p.run for p in analysis.points], analysis.params)
    if len(configs) * (len(configs) - 1) // 2 > MAX_PAGE_PAIRS:
        return None
    return differences.all_differences(configs)


def _difference_cell(value: float | None, metric: str) -> list:
    return ["–", None] if value is None else [("+" if value >= 0 else "") + style.human(value, metric), value]


def differences_table(pairs: list[differences.PairDifference]) -> dict:
    """One row per difference a − b: its 95% interval, whether it is resolved, and how it was computed."""
    columns = [column("metric"), column("a"), column("b"), column("a − b", numeric=True), column("95% low", numeric=True),
               column("95% high", numeric=True), column("resolved", badge=True), column("method")]  # fmt: skip
    rows = []
    for pair in pairs:
        d = pair.difference
        resolved = {True: "resolved", False: "unresolved", None: "no interval"}[d.resolved]
        cells = [pair.metric, pair.a, pair.b, *(_difference_cell(v, pair.metric) for v in (d.mean, d.low, d.high)),
                 resolved, d.method]  # fmt: skip
        rows.append({"state": "front" if d.resolved else "noise", "key": f"{pair.metric}:{pair.a}:{pair.b}",
                     "title": None, "cells": cells})  # fmt: skip
    return {"columns": columns, "rows": rows}


def comparison_html(table: compare.ComparisonTable) -> str:
    """Columns: configuration, backbone, then (paper, this sweep) per value, then what the sweep's runs were."""
    head = "".join(f"<th>{esc(h)}</th>" for h in table.headers)

    def css(i: int, n: int) -> str:
        if i < 2:
            return ""
        if i == n - 1:
            return ' class="runs"'
        return ' class="num paper"' if i % 2 == 0 else ' class="num"'

    rows = "".join(
        f'<tr class="{kind}">' + "".join(f"<td{css(i, len(row))}>{esc(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row, kind in zip(table.rows, table.kinds)
    )
    return (
        f'<div><table class="paper-table"><caption>{esc(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f'<p class="note">{esc(table.note)}</p></div>'
    )
