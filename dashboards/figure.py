"""The interactive Plotly charts: the Pareto front and, for Optuna sweeps, hypervolume over trials.

Each trace carries `meta.role` (runs | front | excluded | paper) so tests and scripts can find
the run points and the front in the browser's `gd.data` without guessing from names.
"""

import plotly.graph_objects as go

from dashboards import paper, style
from dashboards.analysis import Analysis


def _runs_traces(analysis: Analysis, embedding: str, order: list[str]) -> list[go.Scatter]:
    """An embedding's competing runs: front points, then dominated ones (dimmed), one legend entry.

    Two traces, because a legend symbol cannot show per-point opacity.
    """
    points = [p for p in analysis.competing if (p.run.get("embedding") or "unknown") == embedding]
    groups = [[p for p in points if p.on_front], [p for p in points if not p.on_front]]
    traces = []
    for group, on_front in zip(groups, (True, False)):
        if not group:
            continue
        traces.append(
            go.Scatter(
                x=[p.x for p in group],
                y=[p.y for p in group],
                mode="markers",
                name=f"{embedding} ({len(points)} run{'s' if len(points) > 1 else ''})",
                legendgroup=embedding,
                showlegend=not traces,
                meta={"role": "runs", "embedding": embedding, "front": on_front},
                customdata=[p.run["run_id"] for p in group],
                hovertext=[style.hover_text(p, analysis) for p in group],
                hovertemplate="%{hovertext}<extra></extra>",
                marker=dict(
                    color=style.colour(embedding, order),
                    size=style.marker_sizes(group, reference=analysis.competing),
                    sizemode="diameter",
                    opacity=1.0 if on_front else style.DOMINATED_OPACITY,
                    line=dict(color="#000000", width=1.5 if on_front else 0),
                ),
            )
        )
    return traces


def _front_trace(analysis: Analysis) -> go.Scatter:
    front = analysis.front
    return go.Scatter(
        x=[p.x for p in front],
        y=[p.y for p in front],
        mode="lines",
        # Vertical first when bigger x is better: the staircase bounds what the front dominates.
        line=dict(shape="vh" if analysis.x.maximize else "hv", color="#000000", width=1.5),
        name=f"Pareto front ({len(front)} run{'s' if len(front) != 1 else ''})",
        meta={"role": "front"},
        customdata=[p.run["run_id"] for p in front],
        hoverinfo="skip",
    )


def _excluded_trace(analysis: Analysis) -> go.Scatter | None:
    """Failed, running or killed runs that still have both values: drawn as grey crosses."""
    points = [p for p in analysis.excluded if p.has_values]
    if not points:
        return None
    return go.Scatter(
        x=[p.x for p in points],
        y=[p.y for p in points],
        mode="markers",
        name=f"not on front: failed/running ({len(points)})",
        meta={"role": "excluded"},
        customdata=[p.run["run_id"] for p in points],
        hovertext=[style.hover_text(p, analysis) for p in points],
        hovertemplate="%{hovertext}<extra></extra>",
        marker=dict(symbol="x", color=style.EXCLUDED_COLOUR, size=10),
    )


def _group_label(count: int, top: int, table: int) -> list[str]:
    """Points of one paper table sit close together: label the group once, at its top point."""
    return [f"paper T{table}" if i == top else "" for i in range(count)]


def _add_paper_references(fig: go.Figure, analysis: Analysis, order: list[str]) -> None:
    """The paper's points where it printed both axes; a dotted line where it printed only y."""
    x, y = analysis.x.metric, analysis.y.metric
    both = [r for r in paper.reference_points() if x in r.values and y in r.values and r.values[x] is not None]
    for table in sorted({r.table for r in both}):
        refs = [r for r in both if r.table == table]
        top = max(range(len(refs)), key=lambda i: refs[i].values[y])
        fig.add_trace(
            go.Scatter(
                x=[r.values[x] for r in refs],
                y=[r.values[y] for r in refs],
                mode="markers+text",
                text=_group_label(len(refs), top, table),
                textposition="top center",
                textfont=dict(size=10, color=style.PAPER_COLOUR),
                name=f"paper Table {table} (other hardware)",
                meta={"role": "paper", "table": table},
                customdata=[f"paper Table {table}: {r.label}" for r in refs],
                hovertemplate="%{customdata}<br>" + f"{x} %{{x:,.0f}}, {y} %{{y:.2f}}"
                "<br>from the paper, measured on other hardware<extra></extra>",
                marker=dict(symbol="star", size=13, color="#ffffff", line=dict(color=style.PAPER_COLOUR, width=1.5)),
            )
        )
    for ref in paper.reference_points():
        if ref.line_when_partial and y in ref.values and x not in ref.values:
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


def pareto_figure(analysis: Analysis) -> go.Figure:
    order = style.embeddings(analysis)
    fig = go.Figure()
    for embedding in order:
        fig.add_traces(_runs_traces(analysis, embedding, order))
    fig.add_trace(_front_trace(analysis))
    excluded = _excluded_trace(analysis)
    if excluded is not None:
        fig.add_trace(excluded)
    _add_paper_references(fig, analysis, order)
    fig.update_layout(
        title=dict(
            text=f"{title(analysis)}<br><sup>measured on {analysis.measured_on()} · "
            f"paper points: {paper.HARDWARE_NOTE}, not comparable</sup>",
            x=0.01,
        ),
        template="plotly_white",
        height=600,
        margin=dict(l=70, r=170, t=90, b=60),  # the right margin holds the paper's reference labels
        legend=dict(
            x=0.99, y=0.01, xanchor="right", yanchor="bottom",  # inside, bottom right: usually empty
            bgcolor="rgba(255,255,255,0.85)", bordercolor="#dddddd", borderwidth=1, font=dict(size=11),
        ),
        xaxis=dict(title=style.axis_label(analysis.x), type="log" if analysis.x_log else "linear"),
        yaxis=dict(title=style.axis_label(analysis.y)),
        hoverlabel=dict(align="left"),
    )
    return fig


def hypervolume_figure(analysis: Analysis) -> go.Figure:
    history = analysis.hypervolume_history()
    fig = go.Figure(
        go.Scatter(
            x=list(range(1, len(history) + 1)),
            y=[hv for _, hv in history],
            mode="lines+markers",
            line=dict(shape="hv"),
            name="hypervolume",
            meta={"role": "hypervolume"},
            text=[name for name, _ in history],
            hovertemplate="trial %{x}: %{text}<br>hypervolume %{y:.3f}<extra></extra>",
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
