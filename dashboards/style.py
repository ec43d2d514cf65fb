"""What the interactive and the static chart share: colours, marker sizes, labels, hover text."""

import html

from dashboards.analysis import Analysis, RunPoint
from dashboards.runs import Objective, finite

EMBEDDING_COLOURS = {"patch": "#1f77b4", "conv": "#ff7f0e", "supertoken": "#2ca02c"}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
EXCLUDED_COLOUR = "#7f7f7f"
PAPER_COLOUR = "#222222"
DOMINATED_OPACITY = 0.35
METRIC_LABELS = {
    "images_per_sec": "inference throughput (images/s)",
    "train_images_per_sec": "training throughput (images/s)",
    "top1": "top-1 accuracy (%)",
    "top5": "top-5 accuracy (%)",
    "params": "model parameters",
    "embed_params": "embedding parameters",
    "flops": "FLOPs per image",
    "peak_mem_mb": "peak GPU memory (MB)",
    "joules_per_image": "energy (J/image)",
}


def embeddings(analysis: Analysis) -> list[str]:
    """Embeddings in a fixed order: the paper's three first, then any other, then unknown."""
    names = {p.run.get("embedding") or "unknown" for p in analysis.points}
    known = [e for e in EMBEDDING_COLOURS if e in names]
    return known + sorted(names - set(known))


def colour(embedding: str, order: list[str]) -> str:
    if embedding in EMBEDDING_COLOURS:
        return EMBEDDING_COLOURS[embedding]
    if embedding == "unknown":
        return EXCLUDED_COLOUR
    others = [e for e in order if e not in EMBEDDING_COLOURS and e != "unknown"]
    return OTHER_COLOURS[others.index(embedding) % len(OTHER_COLOURS)]


def marker_sizes(points: list[RunPoint], reference: list[RunPoint] | None = None) -> list[float]:
    """Diameter in px with area proportional to model params, 11 px at the median `reference` run.

    Relative to the median, not the range: 17.9M vs 18.9M params should look alike, not 1:3.
    """
    reference = points if reference is None else reference
    known = sorted(p.run["params"] for p in reference if finite(p.run.get("params")) and p.run["params"] > 0)
    if not known:
        return [11.0] * len(points)
    median = known[len(known) // 2]
    sizes = []
    for p in points:
        params = p.run.get("params")
        size = 11.0 * (params / median) ** 0.5 if finite(params) and params > 0 else 11.0
        sizes.append(min(max(size, 5.0), 28.0))
    return sizes


def axis_label(objective: Objective) -> str:
    better = "higher" if objective.maximize else "lower"
    name = METRIC_LABELS.get(objective.metric, objective.metric)
    return f"{name} [{objective.metric}, {better} is better]"


def human(value, metric: str = "") -> str:
    """Numbers as people read them: 17.9M params, 4.61G FLOPs, 83.52 %."""
    if not finite(value):
        return "–" if value is None else str(value)
    if metric in ("params", "embed_params", "flops") or abs(value) >= 1e6:
        for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{suffix}"
    if isinstance(value, int):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def hover_text(point: RunPoint, analysis: Analysis) -> str:
    """Plotly hover: run name, state, every swept param, size, cost and where it was measured."""
    run = point.run
    esc = lambda v: html.escape(str(v))  # noqa: E731 - run names and tags are user text
    lines = [f"<b>{esc(run.get('run_name') or run['run_id'])}</b>", f"state: {esc(point.excluded or point.state)}"]
    for objective, value in ((analysis.x, point.x), (analysis.y, point.y)):
        lines.append(f"{objective.metric}: {human(value, objective.metric)}")
    for name in dict.fromkeys(["model", *analysis.swept_params]):  # model once, even when swept
        if run.get(name) is not None:
            lines.append(f"{name}: {esc(run[name])}")
    lines += [
        f"params: {human(run.get('params'), 'params')}",
        f"FLOPs: {human(run.get('flops'), 'flops')}",
        f"device: {esc(run.get('device') or '–')}",
        f"precision: {esc(run.get('precision') or '–')}" + (" (shared GPU)" if run.get("gpu_shared") else ""),
    ]
    return "<br>".join(lines)
