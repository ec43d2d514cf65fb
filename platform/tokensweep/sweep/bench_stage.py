"""The bench stage: after a sweep's training trials end, every distinct architecture benched alone.

On the sweep's Ray cluster the measurement (tokensweep.sweep.bench_measure) is one Ray task that
holds a whole node: every GPU and CPU of a GPU node when the trials trained on GPUs, else every CPU
of the node with the most; the training trials have ended, so nothing else of the sweep runs there.
`tokensweep bench --sweep NAME` runs the same measurement in its own process, later and elsewhere
(another GPU): a new bench of the same sweep, recorded beside the earlier ones.

The stage is part of the sweep's record (tokensweep.sweep.bench_record): the parent run's tags say
where it got to, so a driver killed during it resumes it with `tokensweep run --resume` (a measured
table is recorded, not measured again; runs already written are not written twice), and a failure is
a tag on the parent run and a non-zero exit, the training results untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tokensweep.errors import SpecError
from tokensweep.sweep import bench_measure, bench_record
from tokensweep.sweep.architectures import Architecture, arch_id_of, distinct_architectures
from tokensweep.tracking import tags as T
from tokensweep.tracking.store import mlflow_error
from tokensweep.tracking.uris import redact

log = logging.getLogger(__name__)


@dataclass
class BenchOutcome:
    status: str  # finished | failed | disabled
    bench_id: str | None = None
    table: dict | None = None
    reason: str | None = None
    written: int = 0  # child runs written by this session

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def plan(configs: dict, runs: list) -> tuple[list[Architecture], dict[str, list[str]]]:
    """The sweep's architectures (of every trial: {tune trial id: TrialConfig}) and the child runs of each."""
    archs = distinct_architectures(configs.values())
    run_of = {r.data.tags.get(T.TRIAL_ID): r.info.run_id for r in runs}
    runs_by_arch: dict[str, list[str]] = {a.arch_id: [] for a in archs}
    for trial_id, config in configs.items():
        if trial_id in run_of:
            runs_by_arch[arch_id_of(config)].append(run_of[trial_id])
    return archs, runs_by_arch


def record_architectures(spec, tracker, configs: dict) -> tuple[list[Architecture], dict[str, list[str]]]:
    """The sweep's architectures and the child runs of each, recorded on the parent run: what a bench
    measures, and what `tokensweep bench --sweep` benches later."""
    runs = bench_record.child_runs(tracker)
    archs, runs_by_arch = plan(configs, runs)
    bench_record.write_architectures(tracker, archs, runs_by_arch, runs, spec.plugins)
    return archs, runs_by_arch


def skip_stage(spec, tracker, configs: dict, pending) -> BenchOutcome:
    """[bench] enabled = false: nothing of the stage runs. The architectures are still recorded (for a later
    `tokensweep bench --sweep`), as one more of the sweep's writes in `pending` (a PendingWrites): a store
    that is unreachable now gets them later or reports them lost with the rest, and fails no bench."""

    def record() -> None:
        record_architectures(spec, tracker, configs)
        tracker.tag(tracker.parent_run_id, **{T.BENCH_STATUS: "disabled"})

    pending.submit("record the architectures", record)
    return BenchOutcome("disabled")


def run_stage(spec, tracker, configs: dict) -> BenchOutcome:
    """The sweep's own bench (or what is left of it after a killed driver); never raises for a failed bench."""
    parent = tracker.parent_run_id
    try:
        archs, runs_by_arch = record_architectures(spec, tracker, configs)
        table = stage_table(spec, tracker, archs)
        tracker.tag(parent, **{T.BENCH_STATUS: "recording"})
        written = bench_record.record_on_children(tracker, table, runs_by_arch, bench_record.child_runs(tracker))
        tracker.tag(parent, **{T.BENCH_STATUS: "finished"})
        if T.BENCH_FAILURE in tracker.tags_of(parent):
            tracker.client.delete_tag(parent, T.BENCH_FAILURE)  # an earlier session's failure, now resumed
        return BenchOutcome("finished", table["bench_id"], table, written=written)
    except Exception as err:
        reason = mlflow_error(err)
        log.warning("the bench stage failed: %s", reason)
        try:
            tracker.tag(parent, **{T.BENCH_STATUS: "failed", T.BENCH_FAILURE: reason})
        except Exception as tag_err:  # MLflow itself is down: the exit code and the summary still say it
            log.warning("could not record the bench failure on the parent run: %s", mlflow_error(tag_err))
        return BenchOutcome("failed", reason=reason)


def stage_table(spec, tracker, archs: list[Architecture]) -> dict:
    """The stage's measured table: the one an earlier session of this sweep measured, or a new one."""
    tags = tracker.tags_of(tracker.parent_run_id)
    bench_id = tags.get(T.BENCH_STAGE)
    if bench_id:
        table = bench_record.load_table(tracker, bench_id)
        if table is not None and {a.arch_id for a in archs} <= {r["arch_id"] for r in table["rows"]}:
            return table
        if table is not None:  # measured before the sweep had these architectures: bench them all, anew
            bench_id = None
    if not bench_id:
        bench_id = bench_record.new_bench_id(tracker)
        tracker.tag(tracker.parent_run_id, **{T.BENCH_STAGE: bench_id})
    tracker.tag(tracker.parent_run_id, **{T.BENCH_STATUS: "measuring"})
    table = {"bench_id": bench_id, "step": bench_record.bench_step(bench_id), "source": "sweep",
             **measure_on_cluster(spec, archs)}  # fmt: skip
    bench_record.save_table(tracker, table)
    return table


def bench_settings(spec, device: str) -> dict:
    return {"device": device, "batch": spec.bench_batch, "repeats": spec.bench_repeats, "steps": spec.bench_steps}


def pick_node(use_gpu: bool, exclude=frozenset()) -> tuple[str, float, float]:
    """(node id, its CPUs, its GPUs): the alive node with the most GPUs (GPU sweeps) or CPUs."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive") and n["NodeID"] not in exclude]
    key = "GPU" if use_gpu else "CPU"
    candidates = [n for n in nodes if n.get("Resources", {}).get(key, 0) > 0]
    if not candidates:
        raise RuntimeError(f"no alive Ray node has a {key} to bench on")
    best = max(candidates, key=lambda n: (n["Resources"].get(key, 0), n["Resources"].get("CPU", 0), n["NodeID"]))
    resources = best["Resources"]
    return best["NodeID"], resources.get("CPU", 0), resources.get("GPU", 0) if use_gpu else 0


def measure_on_cluster(spec, archs: list[Architecture]) -> dict:
    """bench_measure.measure in one Ray task holding a whole node (see the module's docstring)."""
    import ray
    from ray.exceptions import TaskUnschedulableError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gone: set[str] = set()
    while True:
        node, cpus, gpus = pick_node((spec.gpus or 0) > 0, exclude=gone)
        task = ray.remote(bench_measure.measure).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        )  # fmt: skip
        settings = bench_settings(spec, "cuda" if gpus else "cpu")
        try:
            return ray.get(task.remote([a.to_json() for a in archs], settings, tuple(spec.plugins)))
        except TaskUnschedulableError:  # the node was lost after Ray last listed it alive: the next one
            gone.add(node)


# --- on demand: tokensweep bench --sweep NAME -----------------------------------------------------------


def latest_parent(tracker):
    """The sweep's latest parent run (and its experiment set on the tracker); a SpecError when there is none."""
    exp = tracker.client.get_experiment_by_name(tracker.sweep_name)
    if exp is None:
        raise SpecError(f"--sweep {tracker.sweep_name}: no such sweep in {redact(tracker.tracking_uri)} (no MLflow experiment of that name)")
    runs = tracker.client.search_runs([exp.experiment_id], filter_string=f"tags.`{T.ROLE}` = 'sweep'",
                                      order_by=["attributes.start_time DESC"], max_results=1)  # fmt: skip
    if not runs:
        raise SpecError(f"--sweep {tracker.sweep_name}: the experiment has no sweep (parent) run")
    tracker.experiment_id, tracker.parent_run_id = exp.experiment_id, runs[0].info.run_id
    return runs[0]


def bench_sweep(tracker, settings: dict, plugins: tuple[str, ...] = ()) -> dict:
    """A new bench of a sweep's architectures in this process, recorded beside the earlier ones."""
    parent = latest_parent(tracker)
    if parent.info.status == "RUNNING":
        raise SpecError(f"--sweep {tracker.sweep_name}: the sweep is running (parent run {parent.info.run_id}): bench it "
                        "once it has ended, or, if its driver was killed, finish it with tokensweep run SPEC --resume")  # fmt: skip
    record = bench_record.read_architectures(tracker)
    if record is None:
        raise SpecError(f"--sweep {tracker.sweep_name}: no architectures recorded on its parent run "
                        "(its training trials never all ended); finish it with tokensweep run SPEC --resume")  # fmt: skip
    archs, runs_by_arch, recorded_plugins = record
    bench_id = bench_record.new_bench_id(tracker)
    result = bench_measure.measure([a.to_json() for a in archs], settings, tuple(dict.fromkeys([*recorded_plugins, *plugins])))
    table = {"bench_id": bench_id, "step": bench_record.bench_step(bench_id), "source": "tokensweep bench --sweep", **result}
    bench_record.save_table(tracker, table)
    bench_record.record_on_children(tracker, table, runs_by_arch, bench_record.child_runs(tracker))
    return table
