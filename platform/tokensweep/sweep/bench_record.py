"""A bench in MLflow, written through the sweep's SweepTracker (the one writer).

    parent run  bench/architectures.json   every architecture of the sweep and the child runs of each
                bench/<bench_id>.json, .csv one table per bench; a later bench adds its own, never rewrites one
                tags tokensweep.benches (how many benches were started), and for the sweep's own stage
                tokensweep.bench_stage (its bench_id), tokensweep.bench_status, tokensweep.bench_failure
    child run   metrics bench_images_per_sec, bench_images_per_sec_ci_low, _ci_high at step n, n being the
                bench's number on the sweep (bench_id "n-<hex>"): the metric history keeps every bench and
                the latest is the run's value; tags bench_id and bench_device (the latest bench's) and
                tokensweep.bench_steps, {n: bench_id} of every bench logged to the run.

Every write is idempotent (a child that has a bench's step is not written again), so a stage killed
half-way through recording is finished by running it again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import tempfile
import time

from mlflow.entities import Metric, RunTag

from tokensweep.sweep.architectures import Architecture
from tokensweep.tracking import tags as T
from tokensweep.tracking.store import quote

ARCHITECTURES = "bench/architectures.json"
METRICS = ("bench_images_per_sec", "bench_images_per_sec_ci_low", "bench_images_per_sec_ci_high")
ROW_FIGURES = ("images_per_sec", "ci_low", "ci_high")  # the table's columns behind METRICS
CSV_COLUMNS = ("bench_id", "step", "arch_id", "label", "model", "img_size", "knobs", "precision", "batch",
               "images_per_sec", "ci_low", "ci_high", "coverage", "repeats", "steps", "threads", "device",
               "repeat_images_per_sec")  # fmt: skip


def table_path(bench_id: str, ext: str = "json") -> str:
    return f"bench/{bench_id}.{ext}"


def bench_step(bench_id: str) -> int:
    return int(bench_id.split("-", 1)[0])


def child_runs(tracker) -> list:
    """Every trial run of the sweep's parent run."""
    return tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.`{T.PARENT}` = {quote(tracker.parent_run_id)} and tags.`{T.ROLE}` = 'trial'",
        max_results=50_000,
    )


def write_architectures(tracker, archs: list[Architecture], runs_by_arch: dict[str, list[str]], runs: list,
                        plugins: tuple[str, ...] = ()) -> None:  # fmt: skip
    """The sweep's architectures on the parent run (with the plugin modules that build them), each child's arch_id tag."""
    doc = {
        "architectures": [{**a.to_json(), "runs": runs_by_arch.get(a.arch_id, [])} for a in archs],
        "plugins": list(plugins),
    }
    tracker.client.log_dict(tracker.parent_run_id, doc, ARCHITECTURES)
    arch_of = {run_id: arch_id for arch_id, ids in runs_by_arch.items() for run_id in ids}
    for run in runs:
        arch_id = arch_of.get(run.info.run_id)
        if arch_id and run.data.tags.get(T.ARCH_ID) != arch_id:
            tracker.tag(run.info.run_id, **{T.ARCH_ID: arch_id})


def read_architectures(tracker) -> tuple[list[Architecture], dict[str, list[str]], tuple[str, ...]] | None:
    """(architectures, their child runs, plugin modules) as the stage recorded them; None if it never did."""
    doc = read_json(tracker, ARCHITECTURES)
    if doc is None:
        return None
    archs = [Architecture.from_json({k: v for k, v in a.items() if k != "runs"}) for a in doc["architectures"]]
    return archs, {a["arch_id"]: list(a["runs"]) for a in doc["architectures"]}, tuple(doc.get("plugins", ()))


def new_bench_id(tracker) -> str:
    """The next bench of the sweep: 'n-<hex>', n counted on the parent run (tokensweep.benches)."""
    n = int(tracker.tags_of(tracker.parent_run_id).get(T.BENCHES, "0")) + 1
    tracker.tag(tracker.parent_run_id, **{T.BENCHES: n})
    return f"{n}-{secrets.token_hex(4)}"


def read_json(tracker, path: str) -> dict | None:
    folder, _, name = path.rpartition("/")
    if name not in {os.path.basename(f.path) for f in tracker.client.list_artifacts(tracker.parent_run_id, folder)}:
        return None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bar for one small file
    with tempfile.TemporaryDirectory() as tmp:
        local = tracker.client.download_artifacts(tracker.parent_run_id, path, tmp)
        with open(local) as f:
            return json.load(f)


def load_table(tracker, bench_id: str) -> dict | None:
    return read_json(tracker, table_path(bench_id))


def save_table(tracker, table: dict) -> None:
    """The bench's table on the parent run, as JSON (everything) and CSV (one flat row per architecture)."""
    tracker.client.log_text(tracker.parent_run_id, to_csv(table), table_path(table["bench_id"], "csv"))
    tracker.client.log_dict(tracker.parent_run_id, table, table_path(table["bench_id"]))  # last: its presence means done


def to_csv(table: dict) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    common = {k: table[k] for k in ("bench_id", "step", "repeats", "steps", "threads", "device")}
    for row in table["rows"]:
        writer.writerow({**common, **row, "knobs": json.dumps(row["knobs"], sort_keys=True),
                         "repeat_images_per_sec": " ".join(f"{v:.6g}" for v in row["repeat_images_per_sec"])})  # fmt: skip
    return buf.getvalue()


def record_on_children(tracker, table: dict, runs_by_arch: dict[str, list[str]], runs: list) -> int:
    """The bench's figures on every child run of each architecture it measured; returns the runs written."""
    bench_id, step = table["bench_id"], table["step"]
    by_id = {r.info.run_id: r for r in runs}
    written, now = 0, int(time.time() * 1000)
    for row in table["rows"]:
        for run_id in runs_by_arch.get(row["arch_id"], []):
            run = by_id.get(run_id)
            if run is None:
                continue
            steps = json.loads(run.data.tags.get(T.BENCH_STEPS, "{}"))
            if bench_id in steps.values():
                continue  # written before (a resumed stage)
            steps[str(step)] = bench_id
            latest = max(int(s) for s in steps) == step  # tags name the latest bench; an older one only adds history
            tags = {T.BENCH_STEPS: json.dumps(steps, sort_keys=True)}
            if latest:
                tags.update({"bench_id": bench_id, "bench_device": table["device"]})
            tracker.client.log_batch(
                run_id,
                metrics=[Metric(m, float(row[c]), now, step) for m, c in zip(METRICS, ROW_FIGURES)],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            written += 1
    return written
