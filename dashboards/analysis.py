"""A runs table seen through two objectives: which runs compete, how they group into configurations
(seeds of one `config_id`), which configurations are on the front of the means, which are within
noise of it, and why the other runs do not compete. Every chart, table and file of the dashboard is
drawn from one `Analysis`.
"""

from dataclasses import dataclass, replace
from functools import cached_property

import pyarrow as pa

from vocab.values import is_number
from dashboards import configurations, paper
from dashboards.configurations import BENCH, config_key, metric_summary
from dashboards.errors import InputError
from dashboards.noise_front import front_and_noise
from dashboards.pareto import hypervolume_history, pareto_mask
from dashboards.runs import Objective, check_objective, exclusion_reason, param_columns, sorted_rows, unit
from dashboards.stats import Samples, Summary, summarize

THROUGHPUT = "images_per_sec"  # the in-trial figure; the bench's (BENCH) replaces it where every run has one
SEARCH_SOURCE = "throughput_source"  # an Optuna search's runs: the column it scored, which then replaces it


@dataclass(frozen=True)
class RunPoint:
    run: dict
    x: float | None
    y: float | None
    excluded: str | None  # why it cannot be on the front ("failed", "missing top1"); None: it competes
    on_front: bool  # on the front of the runs themselves (pareto.json "front")

    @property
    def has_values(self) -> bool:
        return is_number(self.x) and is_number(self.y)

    @property
    def state(self) -> str:
        """One word for CSS: front, dominated, failed, running, killed, missing."""
        if self.excluded is None:
            return "front" if self.on_front else "dominated"
        return self.excluded.split()[0]


@dataclass(frozen=True)
class Configuration:
    """The competing seeds of one configuration, summarised: the chart's points are these means."""

    key: str  # config_id, or the run id of a run without one
    name: str
    points: tuple[RunPoint, ...]
    x: Summary
    y: Summary
    top1: Summary | None
    throughput: Summary | None  # the bench figure when there is one, else the in-trial one
    on_front: bool = False  # on the front of the means
    within_noise: bool = False  # not on it, but nothing surely dominates it (dashboards.noise_front)

    @property
    def n(self) -> int:
        return len(self.points)

    @property
    def run(self) -> dict:
        """The first seed's run: what all seeds share (embedding, model, device) is read from it."""
        return self.points[0].run

    @property
    def state(self) -> str:
        """front | noise | dominated (CSS classes and the tables' state column)."""
        return "front" if self.on_front else "noise" if self.within_noise else "dominated"


@dataclass(frozen=True)
class Analysis:
    experiment: str
    x: Objective
    y: Objective
    x_log: bool
    points: list[RunPoint]
    configurations: list[Configuration]
    params: list[str]  # the table's param columns: vocab's and every kind=param column (knobs)
    x_figure: str  # the column drawn on x: x.metric, or the bench's figure standing in for images_per_sec
    paper_requested: bool = False  # draw the paper's marks and tables whatever the data set

    @property
    def shows_paper(self) -> bool:
        """The paper's marks and tables beside this sweep: asked for, or the sweep is on the paper's data set."""
        return self.paper_requested or any(p.run.get("dataset") == paper.DATASET for p in self.points)

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

    @property
    def config_front(self) -> list[Configuration]:
        """Front configurations sorted by mean x, then mean y, then key."""
        return sorted((c for c in self.configurations if c.on_front), key=lambda c: (c.x.mean, c.y.mean, c.key))

    @property
    def replicated(self) -> bool:
        return any(c.n > 1 for c in self.configurations)

    @cached_property
    def config_of(self) -> dict[str, Configuration]:
        return {p.run["run_id"]: c for c in self.configurations for p in c.points}

    def run_state(self, point: RunPoint) -> str:
        """A competing run shows its configuration's state; the others, why they do not compete."""
        config = self.config_of.get(point.run["run_id"])
        return config.state if config is not None else point.state

    @cached_property
    def swept_params(self) -> list[str]:
        """Params that vary across the runs (embedding always: it is what the sweep is about)."""
        return configurations.swept([p.run for p in self.points], self.params)

    @property
    def is_optuna(self) -> bool:
        return any(
            p.run.get("sweep_search") == "optuna" or p.run.get("optuna_trial_number") is not None for p in self.points
        )

    def measured_on(self) -> str:
        """The device(s) and precision(s) behind the plotted numbers, for titles."""
        runs = [p.run for p in (self.competing or self.points)]
        device = "bench_device" if self.x_figure == BENCH else "device"
        pairs = sorted({(r.get(device) or r.get("device") or "unknown device", r.get("precision") or "unknown precision")
                        for r in runs})  # fmt: skip
        if not pairs:
            return "(no runs yet)"
        text = "; ".join(f"{d}, {precision}" for d, precision in pairs)
        if len(pairs) > 1:
            text = f"{len(pairs)} device/precision settings: {text}"
        if self.x_figure != BENCH and any(r.get("gpu_shared") for r in runs):
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
    return unit(metric) == "img/s" or max(xs) >= 10 * min(xs)


def x_figure(table: pa.Table, rows: list[dict], x: Objective, y: Objective) -> str:
    """What stands in for the in-trial throughput when every run that could compete has it: the figure
    an Optuna search was told (its runs' `throughput_source`), else the bench's."""
    if x.metric != THROUGHPUT:
        return x.metric
    candidates = [r for r in rows if exclusion_reason(r, [y.metric]) is None]
    told = {r.get(SEARCH_SOURCE) for r in candidates}
    for figure in (*sorted(t for t in told if t), BENCH):
        if figure in table.column_names and candidates and all(is_number(r.get(figure)) for r in candidates):
            return figure
    return x.metric


def _configurations(points: list[RunPoint], analysis_x: str, params: list[str], maximize) -> list[Configuration]:
    competing = [p for p in points if p.excluded is None]
    by_key: dict[str, list[RunPoint]] = {}
    for p in competing:
        by_key.setdefault(config_key(p.run), []).append(p)
    swept = configurations.swept([p.run for p in points], params)
    labels = configurations.names([[p.run for p in group] for group in by_key.values()], swept)
    configs = []
    for (key, group), label in zip(by_key.items(), labels):
        runs = [p.run for p in group]
        x = metric_summary(runs, analysis_x) if analysis_x == BENCH else summarize(p.x for p in group)
        throughput = metric_summary(runs, BENCH) or metric_summary(runs, THROUGHPUT)
        configs.append(Configuration(key, label, tuple(group), x,
                                     summarize(p.y for p in group), metric_summary(runs, "top1"), throughput))  # fmt: skip
    on_front, within = front_and_noise(
        [(c.x.mean, c.y.mean) for c in configs], Samples([c.x for c in configs]), Samples([c.y for c in configs]), maximize
    )
    return [_with_state(c, f, w) for c, f, w in zip(configs, on_front, within)]


def _with_state(config: Configuration, on_front: bool, within: bool) -> Configuration:
    return replace(config, on_front=on_front, within_noise=within)


def analyse(table: pa.Table, x: Objective, y: Objective, experiment: str = "", x_scale: str = "auto",
            paper_requested: bool = False) -> Analysis:  # fmt: skip
    """Classify every run (never dropping one), group the competing ones into configurations, and
    find the front of the runs and of the configurations' means."""
    if x.metric == y.metric:
        raise InputError(f"the two objectives must differ, both are {x.metric!r}")
    check_objective(table, x)
    check_objective(table, y)
    rows = sorted_rows(table)
    shown = x_figure(table, rows, x, y)
    reasons = [exclusion_reason(r, [shown, y.metric]) for r in rows]
    competing = [i for i, reason in enumerate(reasons) if reason is None]
    maximize = (x.maximize, y.maximize)
    mask = pareto_mask([(rows[i][shown], rows[i][y.metric]) for i in competing], maximize)
    on_front = {i for i, keep in zip(competing, mask) if keep}
    points = [
        RunPoint(r, _number(r.get(shown)), _number(r.get(y.metric)), reasons[i], i in on_front)
        for i, r in enumerate(rows)
    ]
    params = param_columns(table.schema)
    x_log = _use_log_x(shown, x_scale, [p.x for p in points if p.has_values])
    configs = _configurations(points, shown, params, maximize)
    return Analysis(experiment, x, y, x_log, points, configs, params, shown, paper_requested)


def _number(value) -> float | None:
    return float(value) if is_number(value) else None
