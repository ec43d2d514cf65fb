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

from dashboards import figure, style
from dashboards.analysis import Analysis
from vocab.atomic import atomic_path
from dashboards.figure import title
from dashboards.references import Marks, reference_marks


def _draw_configurations(ax, analysis: Analysis, order: list[str]) -> None:
    """Each configuration at its mean with 95% whiskers; its seeds faint behind it. Beyond
    figure.GL_THRESHOLD points they are rasterised in the SVG (10,000 vector markers: seconds, MBs)."""
    sizes = figure.config_sizes(analysis)
    raster = figure.drawn_points(analysis) > figure.GL_THRESHOLD
    for embedding in order:
        configs = [c for c in analysis.configurations if style.embedding(c.run) == embedding]
        if not configs:
            continue
        colour = style.colour(embedding, order)
        seeds = [p for c in configs if c.n > 1 for p in c.points]
        if seeds:
            ax.scatter([p.x for p in seeds], [p.y for p in seeds], s=12, color=colour, alpha=style.SEED_OPACITY,
                       linewidths=0, zorder=1.5, rasterized=raster)
        for state, opacity in figure.STATES:  # zorder, not this order, puts the front on top
            group = [c for c in configs if c.state == state]
            if not group:
                continue
            zorder = {"front": 3, "noise": 2.7}.get(state, 2)
            with_interval = [c for c in group if c.x.has_interval or c.y.has_interval]
            if with_interval:
                xerr = [figure.whiskers([c.x for c in with_interval], analysis.x_log)[i] for i in (1, 0)]
                yerr = [figure.whiskers([c.y for c in with_interval], False)[i] for i in (1, 0)]
                ax.errorbar([c.x.mean for c in with_interval], [c.y.mean for c in with_interval],
                            xerr=[[v or 0.0 for v in side] for side in xerr],
                            yerr=[[v or 0.0 for v in side] for side in yerr],
                            fmt="none", ecolor=colour, alpha=opacity, elinewidth=1, capsize=0 if raster else 2,
                            zorder=zorder - 0.1,
                            rasterized=raster)
            ax.scatter([c.x.mean for c in group], [c.y.mean for c in group],
                       s=[(sizes[c.key] * 0.75) ** 2 for c in group],  # px diameter -> pt^2 area
                       color=colour, alpha=opacity, edgecolors={"front": "black", "noise": "#555555"}.get(state, "none"),
                       linewidths=1.0, zorder=zorder, rasterized=raster)  # fmt: skip


def _draw_front(ax, analysis: Analysis) -> None:
    front = analysis.config_front
    if front:
        # steps-pre = vertical first, matching Plotly's "vh" (see figure._front_trace).
        ax.plot(
            [c.x.mean for c in front],
            [c.y.mean for c in front],
            drawstyle="steps-pre" if analysis.x.maximize else "steps-post",
            color="black",
            linewidth=1.2,
            zorder=2.5,
        )


def _draw_excluded(ax, analysis: Analysis) -> None:
    points = [p for p in analysis.excluded if p.has_values]
    if points:
        ax.scatter([p.x for p in points], [p.y for p in points], marker="x", color=style.EXCLUDED_COLOUR, zorder=2,
                   rasterized=figure.drawn_points(analysis) > figure.GL_THRESHOLD)


def _draw_paper(ax, analysis: Analysis, order: list[str], marks: Marks) -> bool:
    """Paper points as stars (one label per table), y-only results as dotted lines labelled on the
    right; only those within the sweep's own range (dashboards.references)."""
    x, y = analysis.x.metric, analysis.y.metric
    for table in sorted({r.table for r in marks.points}):
        group = [r for r in marks.points if r.table == table]
        ax.scatter([r.values[x] for r in group], [r.values[y] for r in group], marker="*", s=140,
                   facecolor="white", edgecolor="black", zorder=4)
        top = max(group, key=lambda r: r.values[y])
        ax.annotate(f"paper T{table}", (top.values[x], top.values[y]), xytext=(0, 7), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8)
    for ref in marks.lines:
        ax.axhline(ref.values[y], linestyle=":", linewidth=1, color=style.colour(ref.embedding, order))
        ax.annotate(f"paper T{ref.table} {ref.embedding} {ref.values[y]:.2f}", (1.01, ref.values[y]),
                    xycoords=("axes fraction", "data"), va="center", fontsize=8,
                    color=style.colour(ref.embedding, order))
    return bool(marks.points or marks.lines)


def _legend(fig, analysis: Analysis, order: list[str], paper_drawn: bool) -> None:
    """Below the plot, outside it: a legend never hides a point."""
    handles = [
        Line2D([], [], marker="o", linestyle="", color=style.colour(e, order), label=e)
        for e in order
        if any(style.embedding(c.run) == e for c in analysis.configurations)
    ]
    handles.append(Line2D([], [], color="black", label=f"Pareto front of the means ({len(analysis.config_front)})"))
    if any(p.has_values for p in analysis.excluded):
        handles.append(Line2D([], [], marker="x", linestyle="", color=style.EXCLUDED_COLOUR, label="failed/running"))
    if paper_drawn:
        handles.append(Line2D([], [], marker="*", linestyle="", markerfacecolor="white", markeredgecolor="black",
                              color="black", label="paper (other hardware)"))
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=min(len(handles), 6), frameon=False)


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
    _draw_configurations(ax, analysis, order)
    _draw_front(ax, analysis)
    _draw_excluded(ax, analysis)
    marks = reference_marks(analysis)
    paper_drawn = _draw_paper(ax, analysis, order, marks)
    _format_x_axis(ax, analysis)
    ax.set_xlabel(style.axis_label(analysis.x, analysis.x_figure))
    ax.set_ylabel(style.axis_label(analysis.y))
    ax.grid(True, which="major", alpha=0.3)
    stats = "means with 95% Student t intervals over seeds" if analysis.replicated else "single seed: no interval"
    subtitle = textwrap.fill(f"measured on {analysis.measured_on()}; {stats}; marker area ~ model params", 110)
    left_out = len(analysis.points) - len([p for p in analysis.points if p.has_values])
    if left_out:
        subtitle += f"\n{left_out} run(s) without both values not drawn (see the runs table)"
    if marks.outside:
        subtitle += f"\n{len(marks.outside)} paper mark(s) outside this sweep's range not drawn (see the paper tables)"
    ax.set_title(f"{title(analysis)}\n{subtitle}", fontsize=10, loc="left")
    _legend(fig, analysis, order, paper_drawn)
    return fig


def write_static(analysis: Analysis, png: Path, svg: Path) -> None:
    fig = static_figure(analysis)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    with atomic_path(svg) as tmp:
        # No date and a fixed hash salt: the same runs give the same SVG bytes.
        with matplotlib.rc_context({"svg.hashsalt": "tokensweep"}):
            fig.savefig(tmp, format="svg", metadata={"Date": None})
