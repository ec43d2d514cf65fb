"""Which of the paper's reference marks the chart draws: only those within the sweep's own range.

The paper's ViT-S numbers on its GPU and a tiny CPU sweep differ 100x in throughput; drawing both
would squeeze the sweep's runs into a corner. So the axes span what the sweep drew (configuration
means with their whiskers, seeds, failed runs) and a paper mark is drawn only where it falls within
that span; the others are listed under the chart, and every one is in the paper tables below it.
"""

import math
from dataclasses import dataclass

from vocab.values import is_number
from dashboards import paper
from dashboards.analysis import Analysis

PAD = 0.05  # of the span on each side, as plotting libraries pad their autorange


@dataclass(frozen=True)
class Marks:
    points: list[paper.ReferencePoint]  # both axes printed and within the range: stars
    lines: list[paper.ReferencePoint]  # only y printed, within the y range: dotted lines
    outside: list[paper.ReferencePoint]  # printed on the chart's axes but outside the sweep's range

    def outside_text(self, analysis: Analysis) -> str:
        x, y = analysis.x.metric, analysis.y.metric
        parts = []
        for ref in self.outside:
            values = [f"{m} {ref.values[m]:,.4g}" for m in (x, y) if ref.values.get(m) is not None]
            parts.append(f"T{ref.table} {ref.label} ({', '.join(values)})")
        return "; ".join(parts)


def data_range(values: list[float], log: bool) -> tuple[float, float] | None:
    """The span of `values`, padded; None without values."""
    values = [v for v in values if is_number(v) and (v > 0 or not log)]
    if not values:
        return None
    low, high = min(values), max(values)
    if log:
        low, high = math.log10(low), math.log10(high)
    span = high - low
    pad = span * PAD if span > 0 else (PAD if log else max(abs(high) * PAD, 1.0))
    low, high = low - pad, high + pad
    return (10**low, 10**high) if log else (low, high)


def drawn_values(analysis: Analysis) -> tuple[list[float], list[float]]:
    """Every x and y the chart draws for the sweep itself."""
    xs, ys = [], []
    for config in analysis.configurations:
        xs += [config.x.mean, *config.x.bounds]
        ys += [config.y.mean, *config.y.bounds]
        if config.n > 1:
            xs += [p.x for p in config.points]
            ys += [p.y for p in config.points]
    for point in analysis.excluded:
        if point.has_values:
            xs.append(point.x)
            ys.append(point.y)
    return xs, ys


def _within(value: float, span: tuple[float, float] | None) -> bool:
    return span is not None and span[0] <= value <= span[1]


def reference_marks(analysis: Analysis) -> Marks:
    """None unless the sweep is comparable to the paper (Analysis.shows_paper): its ImageNet-100 lines
    across a chart of other data would only mislead."""
    if not analysis.shows_paper:
        return Marks([], [], [])
    x, y = analysis.x.metric, analysis.y.metric
    xs, ys = drawn_values(analysis)
    x_span, y_span = data_range(xs, analysis.x_log), data_range(ys, False)
    points, lines, outside = [], [], []
    for ref in paper.reference_points():
        has_x, has_y = ref.values.get(x) is not None, ref.values.get(y) is not None
        if has_x and has_y:
            inside = _within(ref.values[x], x_span) and _within(ref.values[y], y_span)
            (points if inside else outside).append(ref)
        elif has_y and ref.line_when_partial and x not in ref.values:
            (lines if _within(ref.values[y], y_span) else outside).append(ref)
    return Marks(points, lines, outside)


NOTE = ("Paper marks are drawn only where they fall within this sweep's own range, so its runs keep the "
        "whole chart; the others are listed here and all are in the paper tables below.")  # fmt: skip
