"""pareto.html: one self-contained page (plotly.js inlined, no network fetch) with the chart, the
configurations' means with their intervals, a sortable runs table and the paper's tables beside
this sweep's numbers.

The charts and the tables travel as JSON (`<script type="application/json">`); the page's script
(dashboards.page_js) renders the tables and draws the charts, writing each point's hover text from
the table row that describes it: a run's details are in the page once.
"""

import json
from datetime import datetime, timezone

from dashboards import compare, figure, page_js, references, tables
from dashboards.analysis import Analysis
from dashboards.configurations import BENCH, BENCH_METHOD
from dashboards.stats import PAIRED, STUDENT, UNADJUSTED, WELCH
from dashboards.tables import comparison_html, esc

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
HOVER_ROLES = ("configurations", "seeds", "excluded", "hypervolume")

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
tr.state-noise .badge { background: #bbbbbb; }
tr.state-failed { background: #fde8e8; } tr.state-failed .badge { background: #c0392b; color: #fff; }
tr.state-killed { background: #fde8e8; } tr.state-killed .badge { background: #8e44ad; color: #fff; }
tr.state-running { background: #fff6dd; } tr.state-running .badge { background: #e6a700; color: #fff; }
tr.state-missing { background: #f1f1f1; font-style: italic; } tr.state-missing .badge { background: #888; color: #fff; }
.swatch { display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%; margin-right: 4px; }
.paper-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(600px, 1fr)); gap: 1.2rem 2rem; }
.paper-grid > div { overflow-x: auto; min-width: 0; }
.paper-table th, .paper-table td { white-space: normal; vertical-align: top; }
.paper-table td.paper { color: #777; } .paper-table td.runs { color: #666; font-size: 0.72rem; max-width: 20rem; }
.paper-table tr.difference td { background: #f7f7fb; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
.scroll { overflow-x: auto; max-height: 70vh; }
.pager { font-size: 0.82rem; color: #555; margin: 0.3rem 0; } .pager button { font-size: 0.78rem; }
"""


def _json(value) -> str:
    """JSON for a <script> element: '</' escaped, so no value can end the element."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def script() -> str:
    return page_js.SCRIPT % {"page_rows": page_js.PAGE_ROWS, "config": json.dumps(PLOTLY_CONFIG),
                             "hover_roles": json.dumps(HOVER_ROLES)}  # fmt: skip


def chart_html(fig, div_id: str) -> str:
    """An empty div and the figure as JSON ('</' escaped: the JSON cannot end its script element)."""
    data = fig.to_json().replace("</", "<\\/")  # plotly's JSON; figures carry no NaN
    return (f'<div id="{div_id}" class="chart"></div>'
            f'<script type="application/json" class="chart" data-div="{div_id}">{data}</script>')  # fmt: skip


PAPER_MARKS_NOTE = (" Stars and dotted lines: the paper's published numbers (ImageNet-100, 300 epochs, on the "
                    "authors' hardware), not this sweep's measurements.")  # fmt: skip


def paper_marks_note(analysis: Analysis, outside: str) -> str:
    if not analysis.shows_paper:
        return ""
    return f'<p class="note" id="paper-marks">{esc(references.NOTE)}{" Outside: " + esc(outside) + "." if outside else ""}</p>'


def summary(analysis: Analysis) -> str:
    counts: dict[str, int] = {}
    for p in analysis.points:
        state = analysis.run_state(p)
        counts[state] = counts.get(state, 0) + 1
    configs = analysis.configurations
    parts = [f"{len(analysis.points)} runs"]
    if analysis.replicated:
        parts.append(f"{len(configs)} configurations ({sum(c.n > 1 for c in configs)} with several seeds)")
        parts.append(f"{len(analysis.config_front)} on the front of the means")
        within = sum(c.within_noise for c in configs)
        parts += [f"{within} within noise of it"] if within else []
    else:
        parts.append(f"{len(analysis.config_front)} on the Pareto front")
    parts += [f"{counts[s]} {s}" for s in ("running", "missing", "killed", "failed") if counts.get(s)]
    return ", ".join(parts)


def statistics_note(analysis: Analysis) -> str:
    if not analysis.replicated:
        text = ("Every configuration ran with a single seed: no interval. Replicate seeds (`[sweep] seeds`) "
                "to see which differences are resolved.")  # fmt: skip
    else:
        text = (f"Each point is a configuration's mean over its seeds (faint points), with 95% intervals: {STUDENT} "
                "(mean ± t·s/√n, n − 1 degrees of freedom). A configuration with a single seed has no interval "
                "(single seed: no interval). The front is computed on the means. A difference is resolved when the "
                f"95% interval of the difference excludes 0 ({WELCH}; bench throughput: {PAIRED}; {UNADJUSTED}); "
                "overlapping intervals can still differ. A configuration surely dominates another when it is at "
                "least as good on both means and one of the two differences is resolved; a configuration off the "
                "front that nothing surely dominates is within noise of the front (grey outline).")  # fmt: skip
    if analysis.x_figure == BENCH:
        text += f" Throughput (x): the bench stage's figure, measured alone; its interval is the {BENCH_METHOD}."
    return text


def configurations_section(analysis: Analysis) -> str:
    if not analysis.replicated:
        return ""
    return ("<h2>Configurations</h2>\n<p class=\"note\">Configurations with more than one seed: means ± 95% "
            f"intervals ({STUDENT}). Click a column header to sort.</p>\n"
            '<div id="configs-table-box" class="table-box"></div>')  # fmt: skip


def differences_section(analysis: Analysis, pairs) -> str:
    if pairs is None:
        return (f"<h2>Differences</h2>\n<p class=\"note\">Too many configurations for one page: "
                f"<code>tokensweep report {esc(analysis.experiment)} --format csv</code> lists every difference.</p>")
    if not pairs:
        return ""
    note = (f"Every difference between two configurations (a − b), as <code>tokensweep report</code> lists them: "
            f"resolved when its 95% interval excludes 0 ({WELCH}; bench images/sec: {PAIRED}); {UNADJUSTED}.")
    return f'<h2>Differences</h2>\n<p class="note">{note}</p>\n<div id="differences-table-box" class="table-box"></div>'


def paper_section(analysis: Analysis, runs: list[dict]) -> str:
    """The paper's tables beside this sweep; folded behind one line when the sweep is not comparable."""
    tables = f'<p class="note">{esc(compare.seeds_note(runs))}</p>\n<div class="paper-grid">' + "".join(
        comparison_html(t) for t in compare.compare_all(runs)) + "</div>"
    if analysis.shows_paper:
        return f"<h2>The paper's tables beside this sweep</h2>\n{tables}"
    datasets = ", ".join(sorted({str(r.get("dataset")) for r in runs if r.get("dataset")})) or "another data set"
    return (f'<details id="paper-tables"><summary>The paper\'s tables (ImageNet-100, 300 epochs): this sweep is on '
            f"{esc(datasets)}, so they are not drawn on the chart; open them here, or draw them with "
            f"<code>tokensweep dashboard {esc(analysis.experiment)} --paper</code>.</summary>\n{tables}</details>")


def page_html(analysis: Analysis, plotly_js: str, refresh_seconds: int | None = None) -> str:
    """The whole page. `refresh_seconds`: reload itself (for `--serve`; not in logged artifacts)."""
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">' if refresh_seconds else ""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    marks = references.reference_marks(analysis)
    outside = marks.outside_text(analysis)
    hypervolume = ""
    if analysis.is_optuna:
        hypervolume = chart_html(figure.hypervolume_figure(analysis), "hypervolume-chart")
    runs = [p.run for p in analysis.points]
    pairs = tables.page_differences(analysis)
    data = {"configs": tables.configurations_table(analysis), "runs": tables.runs_table(analysis),
            "differences": tables.differences_table(pairs or [])}  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
{refresh}
<title>{esc(figure.title(analysis))}</title>
<style>{CSS}</style>
<script type="text/javascript">{plotly_js}</script>
</head>
<body>
<h1>{esc(figure.title(analysis))}</h1>
<p class="sub">Measured on {esc(analysis.measured_on())}. {esc(summary(analysis))}.
Generated {generated}{" · reloads every " + str(int(refresh_seconds)) + " s" if refresh_seconds else ""}.</p>
{chart_html(figure.pareto_figure(analysis, marks), "pareto-chart")}
<p class="note">Marker size: model parameters. Dimmed: dominated configurations. Grey crosses: failed or running
runs (never on the front).{PAPER_MARKS_NOTE if analysis.shows_paper else ""} Runs lacking a value are listed below,
not drawn. {esc(statistics_note(analysis))}</p>
{paper_marks_note(analysis, outside)}
{hypervolume}
{configurations_section(analysis)}
{differences_section(analysis, pairs)}
<h2>Runs</h2>
<p class="note">Click a column header to sort. Every run of the sweep is listed, whatever its state; a run's state
is its configuration's.</p>
<div id="runs-table-box" class="table-box"></div>
{paper_section(analysis, runs)}
<script type="application/json" id="page-data">{_json(data)}</script>
<script type="text/javascript">{script()}</script>
</body>
</html>
"""
