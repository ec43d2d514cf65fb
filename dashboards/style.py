"""What the interactive and the static chart share: colours, marker sizes, labels, numbers."""

from vocab.values import is_number
from dashboards.analysis import Analysis, Configuration
from dashboards.runs import Objective, label, unit
from dashboards.stats import STUDENT

EMBEDDING_COLOURS = {"patch": "#1f77b4", "conv": "#ff7f0e", "supertoken": "#2ca02c"}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
EXCLUDED_COLOUR = "#7f7f7f"
PAPER_COLOUR = "#222222"
DOMINATED_OPACITY = 0.35
NOISE_OPACITY = 0.75  # within noise of the front: between a front point and a dominated one
SEED_OPACITY = 0.3
SIZE_METRICS = ("params", "embed_params", "flops")  # printed as 17.9M, 4.61G


def embedding(run: dict) -> str:
    return run.get("embedding") or "unknown"


def embeddings(analysis: Analysis) -> list[str]:
    """Embeddings in a fixed order: the paper's three first, then any other, then unknown."""
    names = {embedding(p.run) for p in analysis.points}
    known = [e for e in EMBEDDING_COLOURS if e in names]
    return known + sorted(names - set(known))


def colour(name: str, order: list[str]) -> str:
    if name in EMBEDDING_COLOURS:
        return EMBEDDING_COLOURS[name]
    if name == "unknown":
        return EXCLUDED_COLOUR
    others = [e for e in order if e not in EMBEDDING_COLOURS and e != "unknown"]
    return OTHER_COLOURS[others.index(name) % len(OTHER_COLOURS)]


def mean_params(config: Configuration) -> float | None:
    values = [p.run["params"] for p in config.points if is_number(p.run.get("params")) and p.run["params"] > 0]
    return sum(values) / len(values) if values else None


def marker_sizes(params: list[float | None], reference: list[float | None]) -> list[float]:
    """Diameter in px with area proportional to model params, 11 px at the median of `reference`.

    Relative to the median, not the range: 17.9M vs 18.9M params should look alike, not 1:3.
    """
    known = sorted(v for v in reference if is_number(v) and v > 0)
    if not known:
        return [11.0] * len(params)
    median = known[len(known) // 2]
    sizes = []
    for value in params:
        size = 11.0 * (value / median) ** 0.5 if is_number(value) and value > 0 else 11.0
        sizes.append(min(max(size, 5.0), 28.0))
    return sizes


def axis_label(objective: Objective, figure: str | None = None) -> str:
    """`figure`: the column drawn when it stands in for the objective (the bench's throughput)."""
    better = "higher" if objective.maximize else "lower"
    if figure and figure != objective.metric:
        return f"{label(figure)} [{figure}, for {objective.metric}; {better} is better]"
    return f"{label(objective.metric)} [{objective.metric}, {better} is better]"


def human(value, metric: str = "") -> str:
    """Numbers as people read them: 17.9M params, 4.61G FLOPs, 83.52 %."""
    if not is_number(value):
        return "–" if value is None else str(value)
    if metric in SIZE_METRICS or abs(value) >= 1e6:
        for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{suffix}"
    if isinstance(value, int):
        return str(value)
    if unit(metric) == "%":  # accuracies as papers print them
        return f"{value:.2f}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def with_interval(summary, metric: str = "", fmt=None) -> str:
    """'71.2 ± 3.1 (n=3)', '71.2 (n=1, single seed: no interval)', '3,010 [2,980, 3,040] (bench)' or '–'.

    `fmt` prints a number (default: human(value, metric)).
    """
    if summary is None:
        return "–"
    fmt = fmt or (lambda value: human(value, metric))
    mean = fmt(summary.mean)
    if summary.method != STUDENT:  # the bench's interval, not a spread over seeds
        return f"{mean} [{fmt(summary.low)}, {fmt(summary.high)}] (bench)" if summary.has_interval else f"{mean} (bench)"
    if not summary.has_interval:
        return f"{mean} (n=1, single seed: no interval)" if summary.n == 1 else f"{mean} (n={summary.n})"
    if fmt(summary.half_width) == fmt(0.0):  # seeds agree to the printed precision (params, FLOPs)
        return f"{mean} (n={summary.n})"
    return f"{mean} ± {fmt(summary.half_width)} (n={summary.n})"
