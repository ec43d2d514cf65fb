"""A runs table seen through two objectives: which runs compete, which are on the front, and why
the others are not. Every chart, table and file of the dashboard is drawn from one `Analysis`.
"""

from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa

from dashboards.errors import InputError
from dashboards.pareto import hypervolume_history, pareto_mask
from dashboards.runs import PARAM_NAMES, Objective, check_objective, exclusion_reason, finite, sorted_rows

# Throughput: log axis by default (CPU and GPU runs differ 100x). Other metrics: when they span 10x.
LOG_SCALE_METRICS = {"images_per_sec", "train_images_per_sec"}


@dataclass(frozen=True)
class RunPoint:
    run: dict
    x: float | None
    y: float | None
    excluded: str | None  # why it cannot be on the front ("failed", "missing top1"); None: it competes
    on_front: bool

    @property
    def has_values(self) -> bool:
        return finite(self.x) and finite(self.y)

    @property
    def state(self) -> str:
        """One word for the runs table and CSS: front, dominated, failed, running, killed, missing."""
        if self.excluded is None:
            return "front" if self.on_front else "dominated"
        return self.excluded.split()[0]


@dataclass(frozen=True)
class Analysis:
    experiment: str
    x: Objective
    y: Objective
    x_log: bool
    points: list[RunPoint]

    @property
    def competing(self) -> list[RunPoint]:
        return [p for p in self.points if p.excluded is None]

    @property
    def excluded(self) -> list[RunPoint]:
        return [p for p in self.points if p.excluded is not None]

    @property
    def front(self) -> list[RunPoint]:
        """Front runs sorted by x, then y, then run id: a stable order for files and lines."""
        return sorted((p for p in self.points if p.on_front), key=lambda p: (p.x, p.y, p.run["run_id"]))

    @cached_property
    def swept_params(self) -> list[str]:
        """Parameters that vary across the runs (embedding always: it is what the sweep is about)."""
        swept = []
        for name in PARAM_NAMES:
            values = {repr(p.run.get(name)) for p in self.points if p.run.get(name) is not None}
            if len(values) > 1 or (name == "embedding" and values):
                swept.append(name)
        return swept

    @property
    def is_optuna(self) -> bool:
        return any(
            p.run.get("sweep_search") == "optuna" or p.run.get("optuna_trial_number") is not None for p in self.points
        )

    def measured_on(self) -> str:
        """The device(s) and precision(s) behind the plotted numbers, for titles."""
        runs = [p.run for p in (self.competing or self.points)]
        pairs = sorted({(r.get("device") or "unknown device", r.get("precision") or "unknown precision") for r in runs})
        if not pairs:
            return "(no runs yet)"
        text = "; ".join(f"{device}, {precision}" for device, precision in pairs)
        if len(pairs) > 1:
            text = f"{len(pairs)} device/precision settings: {text}"
        if any(r.get("gpu_shared") for r in runs):
            text += " (some throughputs measured on a shared GPU)"
        return text

    def hypervolume_history(self) -> list[tuple[str, float]]:
        """(run name, hypervolume so far) for each trial in start order; see pareto.hypervolume_history."""
        points = [(p.x, p.y) if p.excluded is None else None for p in self.points]
        values = hypervolume_history(points, (self.x.maximize, self.y.maximize))
        return [(p.run["run_name"] or p.run["run_id"], v) for p, v in zip(self.points, values)]


def _use_log_x(metric: str, x_scale: str, xs: list[float]) -> bool:
    positive = all(x > 0 for x in xs)
    if x_scale == "log":
        if not positive:
            raise InputError(f"cannot draw {metric!r} on a log axis: some runs have values <= 0 (use --x-scale linear)")
        return True
    if x_scale == "linear":
        return False
    if x_scale != "auto":
        raise InputError(f"x scale must be auto, log or linear, got {x_scale!r}")
    if not positive or not xs:
        return False
    return metric in LOG_SCALE_METRICS or max(xs) >= 10 * min(xs)


def analyse(table: pa.Table, x: Objective, y: Objective, experiment: str = "", x_scale: str = "auto") -> Analysis:
    """Classify every run (never dropping one) and find the front of the competing ones."""
    if x.metric == y.metric:
        raise InputError(f"the two objectives must differ, both are {x.metric!r}")
    check_objective(table, x)
    check_objective(table, y)
    rows = sorted_rows(table)
    reasons = [exclusion_reason(r, [x.metric, y.metric]) for r in rows]
    competing = [i for i, reason in enumerate(reasons) if reason is None]
    mask = pareto_mask([(rows[i][x.metric], rows[i][y.metric]) for i in competing], (x.maximize, y.maximize))
    on_front = {i for i, keep in zip(competing, mask) if keep}
    points = [
        RunPoint(r, _number(r.get(x.metric)), _number(r.get(y.metric)), reasons[i], i in on_front)
        for i, r in enumerate(rows)
    ]
    x_log = _use_log_x(x.metric, x_scale, [p.x for p in points if p.has_values])
    return Analysis(experiment, x, y, x_log, points)


def _number(value) -> float | None:
    return float(value) if finite(value) else None
