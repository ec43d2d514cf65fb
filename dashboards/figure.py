"""The interactive Plotly charts: the Pareto front of configurations and, for Optuna sweeps,
hypervolume over trials.

Each configuration is drawn at its mean with 95% whiskers on both axes, its seeds as faint points.
Each trace carries `meta.role` (configurations | seeds | front | excluded | paper | hypervolume) so
tests and scripts find them in the browser's `gd.data` without guessing from names. A point's
`customdata` names the page table row that describes it: "c<i>" the i-th row of the configurations
table (configurations with more than one seed), "r<i>" the i-th of the runs table (a run, or a
single-seed configuration, which is its run). The page writes the hover text from those rows in the
browser, so no run's details are embedded twice. Beyond GL_THRESHOLD points the traces use WebGL
(scattergl), which stays fast at 10,000 runs where SVG markers do not.
"""

import plotly.graph_objects as go

from dashboards import paper, style
from dashboards.analysis import Analysis
from dashboards.references import Marks, reference_marks
from dashboards.stats import Summary

GL_THRESHOLD = 1000  # drawn points
STATES = (("front", 1.0), ("noise", style.NOISE_OPACITY), ("dominated", style.DOMINATED_OPACITY))
HOVER = "%{hovertext}<extra></extra>"
OUTLINE = {"front": 1.5, "noise": 1.0}  # px: front black, within noise grey, dominated none


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def whiskers(summaries: list[Summary], log: bool) -> tuple[list, list]:
    """Distances from each mean to its interval's ends (None: no interval). On a log axis a lower
    end at or below 0 is drawn to 1% of the mean: the interval's low end is then off the axis."""
    plus, minus = [], []
    for s in summaries:
        if not s.has_interval:
            plus.append(None)
            minus.append(None)
            continue
        plus.append(s.high - s.mean)
        minus.append(s.mean - s.low if not log or s.low > 0 else 0.99 * s.mean)
    return plus, minus


def _error(summaries: list[Summary], log: bool) -> dict:
    plus, minus = whiskers(summaries, log)
    shown = any(v is not None for v in plus)
    return dict(type="data", symmetric=False, array=plus, arrayminus=minus, visible=shown, thickness=1.2, width=3)


def row_refs(analysis: Analysis) -> dict[str, str]:
    """Each configuration's table row: "c<i>" when replicated (its row in the configurations
    table, which lists those in order), else "r<i>", its single run's row in the runs table."""
    runs = {p.run["run_id"]: i for i, p in enumerate(analysis.points)}
    replicated = [c for c in analysis.configurations if c.n > 1]
    refs = {c.key: f"c{i}" for i, c in enumerate(replicated)}
    refs.update({c.key: f"r{runs[c.run['run_id']]}" for c in analysis.configurations if c.n == 1})
    return refs


def _config_traces(analysis: Analysis, embedding: str, order: list[str], scatter, sizes: dict, refs: dict) -> list:
    """An embedding's configurations at their means, one trace per state (a legend symbol cannot
    show per-point opacity), one legend entry for the embedding."""
    indexed = [c for c in analysis.configurations if style.embedding(c.run) == embedding]
    runs = sum(c.n for c in indexed)
    label = f"{embedding} ({_plural(len(indexed), 'configuration')}, {_plural(runs, 'run')})"
    if not analysis.replicated:
        label = f"{embedding} ({_plural(runs, 'run')})"
    traces = []
    for state, opacity in STATES:
        configs = [c for c in indexed if c.state == state]
        if not configs:
            continue
        traces.append(scatter(
            x=[c.x.mean for c in configs],
            y=[c.y.mean for c in configs],
            error_x=_error([c.x for c in configs], analysis.x_log),
            error_y=_error([c.y for c in configs], False),
            mode="markers",
            name=label,
            legendgroup=embedding,
            showlegend=not traces,
            meta={"role": "configurations", "embedding": embedding, "state": state},
            customdata=[refs[c.key] for c in configs],
            hovertemplate=HOVER,
            marker=dict(
                color=style.colour(embedding, order),
                size=[sizes[c.key] for c in configs],
                opacity=opacity,
                line=dict(color="#000000" if state == "front" else "#555555", width=OUTLINE.get(state, 0)),
            ),
        ))  # fmt: skip
    return traces


def _seed_trace(analysis: Analysis, embedding: str, order: list[str], scatter, index: dict):
    """The seeds of the embedding's replicated configurations: faint, behind their means."""
    points = [p for c in analysis.configurations if c.n > 1 and style.embedding(c.run) == embedding for p in c.points]
    if not points:
        return None
    marker = dict(color=style.colour(embedding, order), size=6, opacity=style.SEED_OPACITY)
    return _run_points(points, scatter, index, name=f"{embedding} seeds", legendgroup=embedding, showlegend=False,
                       meta={"role": "seeds", "embedding": embedding}, marker=marker)  # fmt: skip


def _run_points(points: list, scatter, index: dict, **trace):
    """Runs as markers, each pointing at its row of the runs table ("r<i>") for its hover text."""
    return scatter(
        x=[p.x for p in points],
        y=[p.y for p in points],
        mode="markers",
        customdata=[f"r{index[p.run['run_id']]}" for p in points],
        hovertemplate=HOVER,
        **trace,
    )


def _front_trace(analysis: Analysis, scatter):
    front = analysis.config_front
    return scatter(
        x=[c.x.mean for c in front],
        y=[c.y.mean for c in front],
        mode="lines",
        # Vertical first when bigger x is better: the staircase bounds what the front dominates.
        line=dict(shape="vh" if analysis.x.maximize else "hv", color="#000000", width=1.5),
        name=f"Pareto front of the means ({_plural(len(front), 'configuration')})",
        meta={"role": "front"},
        hoverinfo="skip",
    )


def _excluded_trace(analysis: Analysis, scatter, index: dict):
    """Failed, running or killed runs that still have both values: drawn as grey crosses."""
    points = [p for p in analysis.excluded if p.has_values]
    if not points:
        return None
    return _run_points(points, scatter, index, name=f"not on front: failed/running ({len(points)})",
                       meta={"role": "excluded"}, marker=dict(symbol="x", color=style.EXCLUDED_COLOUR, size=10))  # fmt: skip


def _add_paper_references(fig: go.Figure, analysis: Analysis, order: list[str], marks: Marks) -> None:
    """The paper's points where it printed both axes; a dotted line where it printed only y; each
    only where it falls within the sweep's own range (dashboards.references)."""
    x, y = analysis.x.metric, analysis.y.metric
    for table in sorted({r.table for r in marks.points}):
        refs = [r for r in marks.points if r.table == table]
        top = max(range(len(refs)), key=lambda i: refs[i].values[y])
        fig.add_trace(go.Scatter(
            x=[r.values[x] for r in refs],
            y=[r.values[y] for r in refs],
            mode="markers+text",
            text=[f"paper T{table}" if i == top else "" for i in range(len(refs))],  # one label per group
            textposition="top center",
            textfont=dict(size=10, color=style.PAPER_COLOUR),
            name=f"paper Table {table} (other hardware)",
            meta={"role": "paper", "table": table},
            customdata=[f"paper Table {table}: {r.label}" for r in refs],
            hovertemplate="%{customdata}<br>" + f"{x} %{{x:,.0f}}, {y} %{{y:.2f}}"
            "<br>from the paper, measured on other hardware<extra></extra>",
            marker=dict(symbol="star", size=13, color="#ffffff", line=dict(color=style.PAPER_COLOUR, width=1.5)),
        ))  # fmt: skip
    for ref in marks.lines:
        fig.add_hline(y=ref.values[y], line=dict(dash="dot", width=1, color=style.colour(ref.embedding, order)))
        # Labelled in the right margin, where no run can hide it.
        fig.add_annotation(
            xref="paper", x=1.0, xanchor="left", yref="y", y=ref.values[y], showarrow=False,
            text=f"paper T{ref.table} {ref.embedding} {ref.values[y]:.2f}",
            hovertext=f"paper Table {ref.table}: no {x} printed; ImageNet-100, 300 epochs, other hardware",
            font=dict(size=10, color=style.colour(ref.embedding, order)),
        )


def title(analysis: Analysis) -> str:
    name = analysis.experiment or "sweep"
    return f"{name}: {analysis.y.metric} vs {analysis.x.metric}"


def drawn_points(analysis: Analysis) -> int:
    seeds = sum(c.n for c in analysis.configurations if c.n > 1)
    return len(analysis.configurations) + seeds + len(analysis.excluded)


def config_sizes(analysis: Analysis) -> dict[str, float]:
    """Marker diameter per configuration key, area ~ its mean model params."""
    params = [style.mean_params(c) for c in analysis.configurations]
    sizes = style.marker_sizes(params, reference=params)
    return {c.key: s for c, s in zip(analysis.configurations, sizes)}


def pareto_figure(analysis: Analysis, marks: Marks | None = None) -> go.Figure:
    marks = marks or reference_marks(analysis)
    order = style.embeddings(analysis)
    scatter = go.Scattergl if drawn_points(analysis) > GL_THRESHOLD else go.Scatter
    index = {p.run["run_id"]: i for i, p in enumerate(analysis.points)}  # the runs table's row order
    sizes, refs = config_sizes(analysis), row_refs(analysis)
    fig = go.Figure()
    for embedding in order:
        seeds = _seed_trace(analysis, embedding, order, scatter, index)
        fig.add_traces(([seeds] if seeds else []) + _config_traces(analysis, embedding, order, scatter, sizes, refs))
    fig.add_trace(_front_trace(analysis, scatter))
    excluded = _excluded_trace(analysis, scatter, index)
    if excluded is not None:
        fig.add_trace(excluded)
    _add_paper_references(fig, analysis, order, marks)
    stats = "means with 95% Student t intervals over seeds" if analysis.replicated else "single seed: no interval"
    fig.update_layout(
        title=dict(
            text=f"{title(analysis)}<br><sup>measured on {analysis.measured_on()} · {stats} · "
            f"paper marks: {paper.HARDWARE_NOTE}, not comparable</sup>",
            x=0.01,
        ),
        template="plotly_white",
        height=640,
        margin=dict(l=70, r=170 if marks.lines else 30, t=90, b=60),  # the right margin holds paper line labels
        # Below the plot, never over a point.
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.14, yanchor="top", font=dict(size=11)),
        xaxis=dict(title=style.axis_label(analysis.x, analysis.x_figure), type="log" if analysis.x_log else "linear"),
        yaxis=dict(title=style.axis_label(analysis.y)),
        hoverlabel=dict(align="left"),
    )
    return fig


def hypervolume_figure(analysis: Analysis) -> go.Figure:
    history = analysis.hypervolume_history()
    scatter = go.Scattergl if len(history) > GL_THRESHOLD else go.Scatter
    fig = go.Figure(
        scatter(
            x=list(range(1, len(history) + 1)),
            y=[hv for _, hv in history],
            mode="lines+markers",
            line=dict(shape="hv"),
            name="hypervolume",
            meta={"role": "hypervolume", "hover": "title"},
            customdata=[f"r{i}" for i in range(len(history))],
            hovertemplate="trial %{x}: %{hovertext}<br>hypervolume %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=dict(
            text="Hypervolume over trials (start order)<br><sup>objectives scaled to [0, 1]; "
            "reference point: the worst observed value of each</sup>",
            x=0.01,
        ),
        template="plotly_white",
        height=360,
        margin=dict(l=70, r=30, t=80, b=50),
        xaxis=dict(title="trial", dtick=1 if len(history) <= 30 else None),
        yaxis=dict(title="hypervolume (fraction of the box)", rangemode="tozero"),
    )
    return fig
