"""Runs table in, dashboard files out: pareto.html, pareto.png, pareto.svg, pareto.json."""

import json
import os
from functools import cache
from pathlib import Path

import pyarrow as pa

from dashboards.analysis import Analysis, Configuration, analyse
from dashboards.configurations import BENCH, BENCH_METHOD, DEVICE_HOURS, total
from vocab.atomic import write_text_atomic
from dashboards.page import page_html
from dashboards.runs import Objective, experiment_name, load_runs
from dashboards.static import write_static
from dashboards.tables import page_differences
from dashboards.stats import SINGLE, UNADJUSTED, Summary

DEFAULT_X = Objective("images_per_sec", maximize=True)
DEFAULT_Y = Objective("top1", maximize=True)
OUTPUT_FILES = ("pareto.html", "pareto.png", "pareto.svg", "pareto.json")


@cache
def _plotly_js() -> str:
    """plotly.js as shipped inside the plotly package (~4.8 MB): inlined, so the page works offline."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _interval(summary: Summary | None) -> dict | None:
    if summary is None:
        return None
    return {"mean": summary.mean, "sd": summary.sd, "ci_low": summary.low, "ci_high": summary.high, "n": summary.n,
            "method": summary.method if summary.has_interval else SINGLE}  # fmt: skip


def configuration_json(config: Configuration) -> dict:
    top1, throughput = config.top1, config.throughput
    return {
        "config_id": config.key,
        "name": config.name,
        "n": config.n,
        "top1_mean": top1.mean if top1 else None,
        "top1_ci_low": top1.low if top1 else None,
        "top1_ci_high": top1.high if top1 else None,
        "images_per_sec": throughput.mean if throughput else None,  # the bench figure when there is one
        "images_per_sec_ci_low": throughput.low if throughput else None,
        "images_per_sec_ci_high": throughput.high if throughput else None,
        "images_per_sec_figure": (BENCH if throughput.method == BENCH_METHOD else "images_per_sec") if throughput else None,
        "on_front": config.on_front,
        "within_noise_of_front": config.within_noise,
        "x": _interval(config.x),
        "y": _interval(config.y),
        "run_ids": [p.run["run_id"] for p in config.points],
        "device_hours": total([p.run for p in config.points], DEVICE_HOURS),  # what its seeds cost, summed
    }


def front_json(analysis: Analysis) -> dict:
    """The non-dominated runs, why the others were left out, the configurations (seeds grouped by
    config_id) with the front of their means, and their differences, in a deterministic order."""
    pairs = page_differences(analysis)
    return {
        "experiment": analysis.experiment,
        "x": {"metric": analysis.x.metric, "direction": analysis.x.direction},
        "y": {"metric": analysis.y.metric, "direction": analysis.y.direction},
        "x_figure": analysis.x_figure,  # the column drawn on x: the bench's throughput when every run has one
        "runs": len(analysis.points),
        "front": [
            {"run_id": p.run["run_id"], "run_name": p.run["run_name"], "x": p.x, "y": p.y} for p in analysis.front
        ],
        "excluded": [
            {"run_id": p.run["run_id"], "run_name": p.run["run_name"], "reason": p.excluded}
            for p in sorted(analysis.excluded, key=lambda p: p.run["run_id"])
        ],
        "configurations": [
            configuration_json(c)
            for c in sorted(analysis.configurations, key=lambda c: (c.x.mean, c.y.mean, c.key))
        ],
        # every pairwise difference of the finished configurations (null: too many for the page; see tokensweep report)
        "differences": None if pairs is None else [p.as_dict() for p in pairs],
        "differences_intervals": f"95%, {UNADJUSTED}",
    }


def build_dashboard(
    runs: "pa.Table | str | os.PathLike",
    out_dir: "str | os.PathLike",
    x: Objective = DEFAULT_X,
    y: Objective = DEFAULT_Y,
    experiment: str | None = None,
    x_scale: str = "auto",
    refresh_seconds: int | None = None,
    paper: bool = False,
) -> dict[str, Path]:
    """Write the four dashboard files into `out_dir` (each atomically); return them by name.

    `runs`: a runs table or a Parquet file of one (see dashboards.runs). `experiment` names the
    sweep in titles (default: the name `tokensweep export` stored in the table). `refresh_seconds`
    makes the page reload itself, for a served, live dashboard. `paper`: draw the paper's marks and
    tables even when the sweep is not on ImageNet-100.
    """
    table = load_runs(runs)
    name = experiment or experiment_name(table) or ""
    analysis = analyse(table, x, y, experiment=name, x_scale=x_scale, paper_requested=paper)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {filename: out / filename for filename in OUTPUT_FILES}
    write_text_atomic(paths["pareto.json"], json.dumps(front_json(analysis), indent=2) + "\n")
    write_static(analysis, paths["pareto.png"], paths["pareto.svg"])
    write_text_atomic(paths["pareto.html"], page_html(analysis, _plotly_js(), refresh_seconds))
    return paths
