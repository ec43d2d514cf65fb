"""Runs table in, dashboard files out: pareto.html, pareto.png, pareto.svg, pareto.json."""

import json
import os
from functools import cache
from pathlib import Path

import pyarrow as pa

from dashboards.analysis import Analysis, analyse
from dashboards.atomic import write_text_atomic
from dashboards.page import page_html
from dashboards.runs import Objective, experiment_name, load_runs
from dashboards.static import write_static

DEFAULT_X = Objective("images_per_sec", maximize=True)
DEFAULT_Y = Objective("top1", maximize=True)
OUTPUT_FILES = ("pareto.html", "pareto.png", "pareto.svg", "pareto.json")


@cache
def _plotly_js() -> str:
    """plotly.js as shipped inside the plotly package (~4.8 MB): inlined, so the page works offline."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def front_json(analysis: Analysis) -> dict:
    """The non-dominated runs and why the others were left out, in a deterministic order."""
    return {
        "experiment": analysis.experiment,
        "x": {"metric": analysis.x.metric, "direction": analysis.x.direction},
        "y": {"metric": analysis.y.metric, "direction": analysis.y.direction},
        "runs": len(analysis.points),
        "front": [
            {"run_id": p.run["run_id"], "run_name": p.run["run_name"], "x": p.x, "y": p.y} for p in analysis.front
        ],
        "excluded": [
            {"run_id": p.run["run_id"], "run_name": p.run["run_name"], "reason": p.excluded}
            for p in sorted(analysis.excluded, key=lambda p: p.run["run_id"])
        ],
    }


def build_dashboard(
    runs: "pa.Table | str | os.PathLike",
    out_dir: "str | os.PathLike",
    x: Objective = DEFAULT_X,
    y: Objective = DEFAULT_Y,
    experiment: str | None = None,
    x_scale: str = "auto",
    refresh_seconds: int | None = None,
) -> dict[str, Path]:
    """Write the four dashboard files into `out_dir` (each atomically); return them by name.

    `runs`: a runs table or a Parquet file of one (see dashboards.runs). `experiment` names the
    sweep in titles (default: the name `tokensweep export` stored in the table). `refresh_seconds`
    makes the page reload itself, for a served, live dashboard.
    """
    table = load_runs(runs)
    name = experiment or experiment_name(table) or ""
    analysis = analyse(table, x, y, experiment=name, x_scale=x_scale)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {filename: out / filename for filename in OUTPUT_FILES}
    write_text_atomic(paths["pareto.json"], json.dumps(front_json(analysis), indent=2) + "\n")
    write_static(analysis, paths["pareto.png"], paths["pareto.svg"])
    write_text_atomic(paths["pareto.html"], page_html(analysis, _plotly_js(), refresh_seconds))
    return paths
