"""pareto.html: one self-contained page (plotly.js inlined, no network fetch) with the chart, a
sortable runs table and the paper's tables beside this sweep's numbers.
"""

import html
from datetime import datetime, timezone

from dashboards import compare, figure, style
from dashboards.analysis import Analysis, RunPoint
from dashboards.runs import finite

TABLE_METRICS = ("top1", "top5", "params", "embed_params", "flops", "images_per_sec", "train_images_per_sec",
                 "peak_mem_mb", "joules_per_image")
STATE_ORDER = {"front": 0, "dominated": 1, "running": 2, "missing": 3, "killed": 4, "failed": 5}
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.sub { color: #555; margin-top: 0; } .note { color: #666; font-size: 0.85rem; }
table { border-collapse: collapse; font-size: 0.82rem; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 3px 8px; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; background: #f6f6f6; position: sticky; top: 0; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 0.75rem; }
tr.state-front .badge { background: #222; color: #fff; } tr.state-front td { font-weight: 600; }
tr.state-dominated .badge { background: #e8e8e8; }
tr.state-failed { background: #fde8e8; } tr.state-failed .badge { background: #c0392b; color: #fff; }
tr.state-killed { background: #fde8e8; } tr.state-killed .badge { background: #8e44ad; color: #fff; }
tr.state-running { background: #fff6dd; } tr.state-running .badge { background: #e6a700; color: #fff; }
tr.state-missing { background: #f1f1f1; font-style: italic; } tr.state-missing .badge { background: #888; color: #fff; }
.swatch { display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%; margin-right: 4px; }
.paper-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(600px, 1fr)); gap: 1.2rem 2rem; }
.paper-grid > div { overflow-x: auto; min-width: 0; }
.paper-table th, .paper-table td { white-space: normal; vertical-align: top; }
.paper-table td.paper { color: #777; } .paper-table td.runs { color: #666; font-size: 0.72rem; max-width: 20rem; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
.scroll { overflow-x: auto; max-height: 70vh; }
"""

# Sort on click; numbers numerically, blanks last either way; Array.sort is stable, so ties keep order.
SORT_JS = """
(function () {
  function key(cell) { var v = cell.getAttribute("data-sort"); return v === null ? cell.textContent.trim() : v; }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    headers.forEach(function (th, col) {
      th.title = "click to sort";
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var numeric = rows.every(function (r) { var k = key(r.cells[col]); return k === "" || !isNaN(Number(k)); });
        rows.sort(function (a, b) {
          var ka = key(a.cells[col]), kb = key(b.cells[col]);
          if (ka === "" || kb === "") { return (ka === "") - (kb === ""); }
          var c = numeric ? Number(ka) - Number(kb) : ka.localeCompare(kb);
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""


def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _cell(text, sort=None, numeric=False) -> str:
    sort_attr = "" if sort is None else f' data-sort="{_esc(sort)}"'
    css = ' class="num"' if numeric else ""
    return f"<td{css}{sort_attr}>{text}</td>"


def _metric_cell(value, metric: str) -> str:
    if not finite(value):
        return _cell("–", "", numeric=True)
    return _cell(_esc(style.human(value, metric)), repr(float(value)), numeric=True)


def _state_text(point: RunPoint) -> str:
    if point.excluded is None:
        return "★ front" if point.on_front else "dominated"
    return point.excluded.upper() if point.state in ("failed", "running", "killed") else point.excluded


def _table_metrics(analysis: Analysis) -> list[str]:
    """The objectives first, then other metrics some run has."""
    first = [analysis.x.metric, analysis.y.metric]
    rest = [m for m in TABLE_METRICS if m not in first and any(finite(p.run.get(m)) for p in analysis.points)]
    return first + rest


def runs_table_html(analysis: Analysis) -> str:
    order = style.embeddings(analysis)
    params = analysis.swept_params
    metrics = _table_metrics(analysis)
    headers = ["state", "run", *params, *metrics, "device", "precision", "started", "failure reason"]
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for p in analysis.points:
        run = p.run
        cells = [
            _cell(f'<span class="badge">{_esc(_state_text(p))}</span>', STATE_ORDER.get(p.state, 9)),
            _cell(_esc(run.get("run_name") or run["run_id"]), run.get("run_name") or run["run_id"]),
        ]
        for name in params:
            value = run.get(name)
            text = _esc(value if value is not None else "–")
            if name == "embedding":
                swatch = style.colour(value or "unknown", order)
                text = f'<span class="swatch" style="background:{swatch}"></span>{text}'
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(_cell(text, "" if value is None else value, numeric=numeric))
        cells += [_metric_cell(run.get(m), m) for m in metrics]
        started = run.get("start_time")
        started_text = started.strftime("%Y-%m-%d %H:%M:%S") if started else ""
        cells += [
            _cell(_esc(run.get("device") or "–")),
            _cell(_esc(run.get("precision") or "–")),
            _cell(_esc(started_text), started_text),
            _cell(_esc(run.get("failure_reason") or "")),
        ]
        title = f' title="{_esc(p.excluded)}"' if p.excluded else ""
        body.append(f'<tr class="state-{p.state}" data-run-id="{_esc(run["run_id"])}"{title}>{"".join(cells)}</tr>')
    return (
        f'<div class="scroll"><table class="sortable" id="runs-table"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>'
    )


def comparison_html(table: compare.ComparisonTable) -> str:
    """Columns: configuration, then (paper, this sweep) per value, then what the sweep's runs were."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in table.headers)

    def css(i: int, n: int) -> str:
        if i == 0:
            return ""
        if i == n - 1:
            return ' class="runs"'
        return ' class="num paper"' if i % 2 else ' class="num"'

    rows = "".join(
        "<tr>" + "".join(f"<td{css(i, len(row))}>{_esc(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    return (
        f'<div><table class="paper-table"><caption>{_esc(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f'<p class="note">{_esc(table.note)}</p></div>'
    )


def summary(analysis: Analysis) -> str:
    counts: dict[str, int] = {}
    for p in analysis.points:
        counts[p.state] = counts.get(p.state, 0) + 1
    parts = [f"{len(analysis.points)} runs", f"{len(analysis.front)} on the Pareto front"]
    parts += [f"{counts[s]} {s}" for s in ("dominated", "running", "missing", "killed", "failed") if counts.get(s)]
    return ", ".join(parts)


def _chart_html(fig, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG)


def page_html(analysis: Analysis, plotly_js: str, refresh_seconds: int | None = None) -> str:
    """The whole page. `refresh_seconds`: reload itself (for `--serve`; not in logged artifacts)."""
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">' if refresh_seconds else ""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    hypervolume = ""
    if analysis.is_optuna:
        hypervolume = _chart_html(figure.hypervolume_figure(analysis), "hypervolume-chart")
    comparisons = "".join(comparison_html(t) for t in compare.compare_all([p.run for p in analysis.points]))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
{refresh}
<title>{_esc(figure.title(analysis))}</title>
<style>{CSS}</style>
<script type="text/javascript">{plotly_js}</script>
</head>
<body>
<h1>{_esc(figure.title(analysis))}</h1>
<p class="sub">Measured on {_esc(analysis.measured_on())}. {_esc(summary(analysis))}.
Generated {generated}{" · reloads every " + str(int(refresh_seconds)) + " s" if refresh_seconds else ""}.</p>
{_chart_html(figure.pareto_figure(analysis), "pareto-chart")}
<p class="note">Marker size: model parameters. Dimmed: dominated runs. Grey crosses: failed or running runs
(never on the front). Stars and dotted lines: the paper's published numbers (ImageNet-100, 300 epochs, on the
authors' hardware), not this sweep's measurements. Runs lacking a value are listed below, not drawn.</p>
{hypervolume}
<h2>Runs</h2>
<p class="note">Click a column header to sort. Every run of the sweep is listed, whatever its state.</p>
{runs_table_html(analysis)}
<h2>The paper's tables beside this sweep</h2>
<div class="paper-grid">{comparisons}</div>
<script type="text/javascript">{SORT_JS}</script>
</body>
</html>
"""
