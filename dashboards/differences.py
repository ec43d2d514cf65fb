"""Every difference between a sweep's configurations, top-1 and images/sec, each with the 95%
interval of the difference and whether it is resolved (dashboards.stats decides, for every output:
the terminal summary, the dashboard, `tokensweep report`).

A configuration is the finished seeds of one `config_id`. Its throughput is the bench's figure when
every configuration has one (differences from the bench's repeats), else the in-trial figure over
seeds: one figure for all, never a mix.
"""

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from vocab.values import is_number
from dashboards import configurations
from dashboards.configurations import BENCH, metric_summary
from dashboards.errors import InputError
from dashboards.stats import (ADJUSTMENTS, HOLM, UNADJUSTED, Difference, Samples, differences,
                              holm_confidences)  # fmt: skip
from dashboards.style import SIZE_METRICS

TOP1, THROUGHPUT = "top1", "images_per_sec"
METRICS = (TOP1, THROUGHPUT)


@dataclass(frozen=True)
class Config:
    name: str
    runs: list[dict]
    summaries: dict  # metric (TOP1, THROUGHPUT) -> Summary | None

    @property
    def n(self) -> int:
        return len(self.runs)

    def total(self, metric: str) -> float | None:
        """A cost (device-hours) of the configuration: the sum over its seeds."""
        return configurations.total(self.runs, metric)

    def mean(self, metric: str) -> float | None:
        """A size figure (params, FLOPs) over the seeds: the same for every seed of one architecture."""
        values = [r[metric] for r in self.runs if is_number(r.get(metric))]
        return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class PairDifference:
    metric: str
    a: str
    b: str
    difference: Difference

    @property
    def resolved(self) -> bool:
        return bool(self.difference.resolved)

    def as_dict(self) -> dict:
        """The row `tokensweep report --format csv` writes and pareto.json lists (resolved: None without an interval)."""
        d = self.difference
        return {"metric": self.metric, "a": self.a, "b": self.b, "difference": d.mean, "ci_low": d.low,
                "ci_high": d.high, "resolved": d.resolved, "method": d.method}  # fmt: skip


def throughput_figure(groups: list[list[dict]]) -> str:
    """The bench's figure when every configuration has one, else the in-trial one."""
    return BENCH if groups and all(any(is_number(r.get(BENCH)) for r in g) for g in groups) else THROUGHPUT


def sweep_configurations(runs: list[dict], params: list[str]) -> list[Config]:
    """The FINISHED runs grouped by configuration, in the order each first appears; `params`: the
    runs table's param columns (they name configurations that would share a name)."""
    finished = [r for r in runs if (r.get("status") or "").upper() == "FINISHED"]
    groups = list(configurations.group(finished).values())
    names = configurations.names(groups, configurations.swept(finished, params))
    figure = throughput_figure(groups)
    return [Config(name, group, {TOP1: metric_summary(group, TOP1), THROUGHPUT: metric_summary(group, figure)})
            for name, group in zip(names, groups)]  # fmt: skip


def check_adjust(adjust: str) -> None:
    if adjust not in ADJUSTMENTS:
        raise InputError(f"adjust must be one of {', '.join(ADJUSTMENTS)}, got {adjust!r}")


def pairs(names: list[str], baseline: str | None = None) -> list[tuple[int, int]]:
    """(a, b) index pairs: every pair in order, or each configuration against the baseline (a - baseline)."""
    if baseline is None:
        return list(combinations(range(len(names)), 2))
    if baseline not in names:
        raise InputError(f"--baseline {baseline!r} is not a configuration of the sweep; its configurations: "
                         + ", ".join(repr(n) for n in names))  # fmt: skip
    b = names.index(baseline)
    return [(a, b) for a in range(len(names)) if a != b]


def metric_differences(configs: list[Config], metric: str, index_pairs, adjust: str = "none") -> list[PairDifference]:
    """The metric's difference a - b for each pair; with adjust="holm", Holm's intervals over these pairs."""
    check_adjust(adjust)
    if not index_pairs:
        return []
    samples = Samples([c.summaries[metric] for c in configs])
    a, b = np.array([p[0] for p in index_pairs]), np.array([p[1] for p in index_pairs])
    diffs = differences(samples, a, b)
    if adjust == "holm":
        diffs = differences(samples, a, b, holm_confidences(diffs.p))
    return [PairDifference(metric, configs[i].name, configs[j].name, diffs.at(k)) for k, (i, j) in enumerate(index_pairs)]


def all_differences(configs: list[Config], baseline: str | None = None, adjust: str = "none") -> list[PairDifference]:
    """Top-1 then images/sec, every pair (or each against the baseline): nothing left out."""
    index_pairs = pairs([c.name for c in configs], baseline)
    return [d for metric in METRICS for d in metric_differences(configs, metric, index_pairs, adjust)]


def adjustment_note(count: int, adjust: str) -> str:
    """Whether the intervals are adjusted for multiple comparisons (it matters from two differences on)."""
    if count < 2:
        return ""
    return f"{count} differences per metric, intervals {HOLM if adjust == 'holm' else UNADJUSTED}"
