"""The static Pareto chart (PNG and SVG) with matplotlib: for papers, READMEs and MLflow's viewer.

Matplotlib rather than Plotly's image export: kaleido needs a Chrome download, not possible here.
Figure() without pyplot keeps no global state, so `--serve` can redraw in a loop.
"""

import textwrap
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from dashboards import paper, style
from dashboards.analysis import Analysis
from dashboards.atomic import atomic_path
from dashboards.figure import title


def _draw_runs(ax, analysis: Analysis, order: list[str]) -> None:
    for embedding in order:
        points = [p for p in analysis.competing if (p.run.get("embedding") or "unknown") == embedding]
        if not points:
            continue
        diameters = style.marker_sizes(points, reference=analysis.competing)
        sizes = [(d * 0.75) ** 2 for d in diameters]  # px diameter -> pt^2 area
        for on_front in (False, True):  # dominated first, so front markers sit on top
            chosen = [(p, s) for p, s in zip(points, sizes) if p.on_front == on_front]
            if chosen:
                ax.scatter(
                    [p.x for p, _ in chosen],
                    [p.y for p, _ in chosen],
                    s=[s for _, s in chosen],
                    color=style.colour(embedding, order),
                    alpha=1.0 if on_front else style.DOMINATED_OPACITY,
                    edgecolors="black" if on_front else "none",
                    linewidths=1.0,
                    zorder=3 if on_front else 2,
                )


def _draw_front(ax, analysis: Analysis) -> None:
    front = analysis.front
    if front:
        # steps-pre = vertical first, matching Plotly's "vh" (see figure._front_trace).
        ax.plot(
            [p.x for p in front],
            [p.y for p in front],
            drawstyle="steps-pre" if analysis.x.maximize else "steps-post",
            color="black",
            linewidth=1.2,
            zorder=2.5,
        )


def _draw_excluded(ax, analysis: Analysis) -> None:
    points = [p for p in analysis.excluded if p.has_values]
    if points:
        ax.scatter([p.x for p in points], [p.y for p in points], marker="x", color=style.EXCLUDED_COLOUR, zorder=2)


def _draw_paper(ax, analysis: Analysis, order: list[str]) -> bool:
    """Paper points as stars (one label per table), y-only results as dotted lines labelled on the right."""
    x, y = analysis.x.metric, analysis.y.metric
    refs = paper.reference_points()
    both = [r for r in refs if x in r.values and y in r.values and r.values[x] is not None]
    for table in sorted({r.table for r in both}):
        group = [r for r in both if r.table == table]
        ax.scatter([r.values[x] for r in group], [r.values[y] for r in group], marker="*", s=140,
                   facecolor="white", edgecolor="black", zorder=4)
        top = max(group, key=lambda r: r.values[y])
        ax.annotate(f"paper T{table}", (top.values[x], top.values[y]), xytext=(0, 7), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8)
    lines = [r for r in refs if r.line_when_partial and y in r.values and x not in r.values]
    for ref in lines:
        ax.axhline(ref.values[y], linestyle=":", linewidth=1, color=style.colour(ref.embedding, order))
        ax.annotate(f"paper T{ref.table} {ref.embedding} {ref.values[y]:.2f}", (1.01, ref.values[y]),
                    xycoords=("axes fraction", "data"), va="center", fontsize=8,
                    color=style.colour(ref.embedding, order))
    return bool(both or lines)


def _legend(ax, analysis: Analysis, order: list[str], paper_drawn: bool) -> None:
    handles = [
        Line2D([], [], marker="o", linestyle="", color=style.colour(e, order), label=e)
        for e in order
        if any((p.run.get("embedding") or "unknown") == e for p in analysis.competing)
    ]
    handles.append(Line2D([], [], color="black", label=f"Pareto front ({len(analysis.front)})"))
    if any(p.has_values for p in analysis.excluded):
        handles.append(Line2D([], [], marker="x", linestyle="", color=style.EXCLUDED_COLOUR, label="failed/running"))
    if paper_drawn:
        handles.append(Line2D([], [], marker="*", linestyle="", markerfacecolor="white", markeredgecolor="black",
                              color="black", label="paper (other hardware)"))
    ax.legend(handles=handles, fontsize=8, loc="lower right", framealpha=0.85)


def _format_x_axis(ax, analysis: Analysis) -> None:
    """Tick labels as people read them (2,000 / 17.9M), not 2x10^3 or an offset 1e7."""
    label = FuncFormatter(lambda value, _: style.human(value, analysis.x.metric))
    if analysis.x_log:
        ax.set_xscale("log")
        low, high = ax.get_xlim()
        few_decades = high / max(low, 1e-300) < 100
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 1.5, 2, 3, 5, 7) if few_decades else (1, 2, 5)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(label)


def static_figure(analysis: Analysis) -> Figure:
    fig = Figure(figsize=(9, 6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    order = style.embeddings(analysis)
    _draw_runs(ax, analysis, order)
    _draw_front(ax, analysis)
    _draw_excluded(ax, analysis)
    paper_drawn = _draw_paper(ax, analysis, order)
    _format_x_axis(ax, analysis)
    ax.set_xlabel(style.axis_label(analysis.x))
    ax.set_ylabel(style.axis_label(analysis.y))
    ax.grid(True, which="major", alpha=0.3)
    subtitle = textwrap.fill(f"measured on {analysis.measured_on()}; marker area ~ model params", 110)
    left_out = len(analysis.points) - len([p for p in analysis.points if p.has_values])
    if left_out:
        subtitle += f"\n{left_out} run(s) without both values not drawn (see the runs table)"
    ax.set_title(f"{title(analysis)}\n{subtitle}", fontsize=10, loc="left")
    _legend(ax, analysis, order, paper_drawn)
    return fig


def write_static(analysis: Analysis, png: Path, svg: Path) -> None:
    fig = static_figure(analysis)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    with atomic_path(svg) as tmp:
        # No date and a fixed hash salt: the same runs give the same SVG bytes.
        with matplotlib.rc_context({"svg.hashsalt": "tokensweep"}):
            fig.savefig(tmp, format="svg", metadata={"Date": None})
