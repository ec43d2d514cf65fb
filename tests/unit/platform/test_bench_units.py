"""The bench's parts without a sweep: the interval of the median, architectures, concurrent_trials,
[bench] and `tokensweep bench --sweep` bad input, a failed bench on a real store (the findings lines:
tests/unit/dashboards/test_dashboard_verdicts.py)."""

import itertools
import math
import random

import pytest

from helpers import SWEEPS
from tokensweep.cli import main
from tokensweep.spec import load_spec
from tokensweep.sweep import bench
from tokensweep.sweep.bench import arch_id_of, distinct_architectures
from tokensweep.sweep.bench import coverage, median_interval, order_index

SMOKE = SWEEPS / "smoke.toml"


# --- the interval of the median ---------------------------------------------------------------------------


def brute_force_coverage(r: int, k: int) -> float:
    """Every equally likely pattern of r repeats falling below (1) or above (0) the true median: the
    interval [x(k), x(r+1-k)] holds the median when at least k fall below it and at least k above."""
    hits = sum(1 for pattern in itertools.product((0, 1), repeat=r) if k <= sum(pattern) <= r - k)
    return hits / 2**r


@pytest.mark.parametrize("r", range(1, 15))
def test_interval_coverage_matches_a_direct_count(r):
    for k in range(1, (r + 1) // 2 + 1):
        assert coverage(r, k) == pytest.approx(brute_force_coverage(r, k), abs=1e-12)
    k = order_index(r)
    # the widest-k choice: covers >= 95% if any k does, and k + 1 would not
    if brute_force_coverage(r, 1) >= 0.95:
        assert brute_force_coverage(r, k) >= 0.95
        assert k + 1 > (r + 1) // 2 or brute_force_coverage(r, k + 1) < 0.95
    else:
        assert k == 1  # too few repeats: [min, max], its coverage reported below 95%


def test_interval_picks_the_order_statistics():
    values = [9.0, 3.0, 7.0, 1.0, 5.0, 8.0, 2.0, 6.0, 4.0]  # r = 9: k = 2, coverage 1 - 2 * 10/512
    got = median_interval(values)
    assert (got.median, got.low, got.high, got.n) == (5.0, 2.0, 8.0, 9)
    assert got.coverage == pytest.approx(1 - 2 * (1 + 9) / 512)
    seven = median_interval([5, 1, 4, 2, 3, 7, 6])  # r = 7: [min, max], 98.4%
    assert (seven.low, seven.high, round(seven.coverage, 4)) == (1, 7, 0.9844)
    three = median_interval([3, 1, 2])
    assert (three.low, three.high, three.coverage) == (1, 3, 0.75)


def test_interval_covers_a_known_median_as_often_as_it_says():
    """Exponential figures (median ln 2), seed fixed: the empirical coverage is the stated one within
    4 standard errors of 4000 draws (a fixed seed makes it deterministic; the margin is for the method)."""
    rng = random.Random(0)
    for r in (7, 9, 12):
        draws = 4000
        hit = 0
        for _ in range(draws):
            got = median_interval([rng.expovariate(1.0) for _ in range(r)])
            hit += got.low <= math.log(2) <= got.high
        stated = coverage(r, order_index(r))
        assert abs(hit / draws - stated) < 4 * math.sqrt(stated * (1 - stated) / draws), (r, hit / draws, stated)


# --- architectures ------------------------------------------------------------------------------------------


def test_architecture_is_model_size_knobs_not_seed_or_recipe():
    spec = load_spec(SMOKE, ["sweep.seeds=[0,1,2]"])
    configs = [v.config for v in spec.variants]
    archs = distinct_architectures(configs)
    assert len(configs) == 12 and len(archs) == 4
    assert [a.label for a in archs] == ["vit_tiny_patch", "vit_tiny_conv", "vit_tiny_supertoken cluster_iters=1",
                                        "vit_tiny_supertoken cluster_iters=3"]  # fmt: skip
    base = configs[0]
    assert arch_id_of(base.replace(seed=5, lr=1e-4, epochs=2)) == arch_id_of(base)
    assert arch_id_of(base.replace(img_size=48)) != arch_id_of(base)
    st = next(c for c in configs if c.spec.embedding == "supertoken")
    assert arch_id_of(st.replace(channels=[8, 16, 16, 32, 32, 64])) != arch_id_of(st)
    assert arch_id_of(st.replace(precision="bf16")) != arch_id_of(st)


# --- concurrent_trials ---------------------------------------------------------------------------------------


def reports(node, start, times, measured=None):
    out = [{"ray_node_id": node, "_started_at": start, "_reported_at": t, "epoch": i + 1} for i, t in enumerate(times)]
    if measured:
        out[-1].update(_measured_from=measured[0], _measured_to=measured[1])
    return out


def test_concurrent_trials_counts_overlaps_on_the_same_node_only():
    results = {
        "a": reports("n1", 0, [10, 20], measured=(15, 20)),
        "b": reports("n1", 5, [12, 16]),  # on n1, ends inside a's window: counted
        "c": reports("n2", 0, [30], measured=(25, 30)),  # another node: not for a
        "d": reports("n1", 20.5, [40], measured=(35, 40)),  # starts after a measured: not for a
        # e: killed once (attempt 1 on n2, 0-28), retried on n1 from 36: beside c and d, not beside a
        "e": reports("n2", 0, [28]) + reports("n1", 36, [50]),
    }
    counts = bench.count_concurrent(results)
    assert counts == {"a": (1, 2), "c": (1, 1), "d": (1, 1)}  # a: b; c: e's first attempt; d: e's second
    # two trials one after the other beside f count once; g and h at once beside k count twice
    results = {
        "f": reports("n1", 0, [10], measured=(4, 10)),
        "g": reports("n1", 0, [6]),
        "h": reports("n1", 6, [12]),
    }
    assert bench.count_concurrent(results)["f"] == (1, 1)
    results = {"k": reports("n1", 0, [13], measured=(7, 13)), "h": reports("n1", 6, [12]), "m": reports("n1", 5, [20])}
    assert bench.count_concurrent(results)["k"] == (2, 1)  # h and m both from 7 to 12


# --- [bench] and `tokensweep bench --sweep`: one line, exit 2 ------------------------------------------------

BAD_BENCH = [
    (["--set", "bench.enabled=1"], "bench.enabled must be true or false, got 1"),
    (["--set", "bench.batch=0"], "bench.batch must be an integer from 1 to 65536, got 0"),
    (["--set", "bench.repeats=-3"], "bench.repeats must be an integer from 1 to 1000, got -3"),
    (["--set", "bench.steps=1.5"], "bench.steps must be an integer from 1 to 100000, got 1.5"),
    (["--set", "bench.repeat=7"], "bench.repeat is not a known option of [bench] (did you mean 'repeats'?)"),
    (["--set", "bench=3"], "bench must be a table ([bench]), got 3"),
]


@pytest.mark.parametrize("argv, message", BAD_BENCH)
def test_bad_bench_section_is_one_line_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(SMOKE), *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_bad_bench_in_a_file_names_its_line(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_patch"\n[bench]\nrepeats = 0\n')
    assert main(["run", str(spec), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tokensweep run: error: {spec}:6: bench.repeats must be an integer from 1 to 1000, got 0"
    )


def test_bench_sweep_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cases = [
        (["--sweep", "smoke"], "no MLflow store at sqlite:///"),
        (["--sweep", "smoke", "vit_s_patch"], "drop the model names (vit_s_patch)"),
        (["--sweep", "smoke", "--repeats", "0"], "--repeats must be a positive integer, got 0"),
        (["--sweep", "smoke", "--set", "cluster_iters=2"], "--set does not apply with --sweep"),
        (["--sweep", "smoke", "--tracking-uri", "./mlruns"], "expected sqlite:///path/mlflow.db"),
        (["--repeats", "3"], "--repeats applies with --sweep NAME only"),
    ]
    for argv, message in cases:
        assert main(["bench", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (argv, err)
    assert list(tmp_path.iterdir()) == []  # no store created


# --- a failed bench: recorded on the parent run, the trial runs untouched -------------------------------------


def test_failed_bench_is_a_tag_on_the_parent_and_keeps_the_trials(tmp_path):
    """The stage's Ray task cannot start (no Ray here): a real MLflow store records the failure."""
    from tokensweep.sweep.bench import run_stage
    from tokensweep.tracking import tags as T
    from tokensweep.tracking.tracker import SweepTracker

    spec = load_spec(SMOKE)
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "smoke")
    tracker.start_parent(tune_path=str(tmp_path / "t"), command="test", tags={}, spec_text="", spec_name="s.toml", resolved={})
    configs = {f"trial_{i}": v.config for i, v in enumerate(spec.variants)}
    runs = {tid: tracker.start_child(tid, tid, c.params(), {}) for tid, c in configs.items()}
    for run_id in runs.values():
        tracker.log_result(run_id, {"top1": 50.0, "epoch_time_s": 1.0}, 1)
        tracker.end_child(run_id, "FINISHED")

    outcome = run_stage(spec, tracker, configs)
    assert outcome.failed and "Ray" in outcome.reason
    tags = tracker.tags_of(tracker.parent_run_id)
    assert tags[T.BENCH_STATUS] == "failed" and tags[T.BENCH_FAILURE] == outcome.reason
    for run_id in runs.values():
        run = tracker.client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.metrics["top1"] == 50.0
        assert not any(k.startswith("bench_") for k in run.data.metrics)
        assert run.data.tags[T.ARCH_ID]  # the architectures were recorded: `tokensweep bench --sweep` can bench later


# --- Optuna's front, as confirm_seeds reads it -------------------------------------------------------------


def test_front_keeps_ties_and_drops_the_dominated():
    """Finished trials (Tune's status, last result and config, as ExperimentAnalysis gives them back)."""
    from types import SimpleNamespace

    from tokensweep.sweep.confirm import front
    from tokensweep.payload import Platform, search_base_config

    platform = Platform("sqlite:///x.db", "x", False, 10.0, ("top1", "flops"))

    def trial(number, top1, flops, status="TERMINATED"):
        config = {**search_base_config({"model": "vit_tiny_patch"}, platform), "optuna_trial_number": number}
        return SimpleNamespace(status=status, last_result={"top1": top1, "flops": flops}, config=config, trial_id=str(number))

    trials = [trial(0, 50, 10), trial(1, 50, 10), trial(2, 40, 10), trial(3, 60, 20), trial(4, 70, 5, status="ERROR"),
              trial(5, 45, 8)]  # fmt: skip
    objectives = (("top1", "max"), ("flops", "min"))
    assert [t.trial_id for t in front(trials, objectives)] == ["0", "1", "3", "5"]  # 2 is dominated by 0; 4 failed


def test_a_measured_table_is_recorded_once_and_a_later_bench_beside_it(tmp_path):
    """A stage whose table was measured before its driver died: recorded without measuring again (there is
    no Ray here to measure with), each run written once; an older bench written late does not take the tags."""
    from mlflow.tracking import MlflowClient

    from tokensweep.sweep import bench
    from tokensweep.sweep.bench import plan, run_stage
    from tokensweep.tracking import tags as T
    from tokensweep.tracking.tracker import SweepTracker

    spec = load_spec(SMOKE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "smoke")
    tracker.start_parent(tune_path=str(tmp_path / "t"), command="test", tags={}, spec_text="", spec_name="s.toml", resolved={})
    configs = {f"trial_{i}": v.config for i, v in enumerate(spec.variants)}
    for tid, c in configs.items():
        tracker.end_child(tracker.start_child(tid, tid, c.params(), {}), "FINISHED")
    archs, _ = plan(configs, bench.child_runs(tracker))

    def table(bench_id, figure):
        rows = [{"arch_id": a.arch_id, "label": a.label, "model": a.model, "img_size": a.img_size, "knobs": a.knobs,
                 "precision": "fp32", "batch": 32, "images_per_sec": figure, "ci_low": figure - 1, "ci_high": figure + 1,
                 "coverage": 0.98, "repeat_images_per_sec": [figure] * 7} for a in archs]  # fmt: skip
        return {"bench_id": bench_id, "step": bench.bench_step(bench_id), "device": "cpu: test", "threads": 1,
                "repeats": 7, "steps": 30, "rows": rows}  # fmt: skip

    stage_id = bench.new_bench_id(tracker)
    tracker.tag(tracker.parent_run_id, **{T.BENCH_STAGE: stage_id, T.BENCH_STATUS: "measuring"})
    bench.save_table(tracker, table(stage_id, 100.0))
    bench.write_architectures(tracker, archs, plan(configs, bench.child_runs(tracker))[1],
                                     bench.child_runs(tracker))  # fmt: skip
    later_id = bench.new_bench_id(tracker)  # `tokensweep bench --sweep` ran before the stage was resumed
    bench.record_on_children(tracker, table(later_id, 200.0), *record_args(tracker))
    for attempt in range(2):  # the stage resumed twice: the second time nothing is left to write
        outcome = run_stage(spec, tracker, configs)
        assert outcome.status == "finished" and outcome.bench_id == stage_id, outcome.reason
        assert outcome.written == (4 if attempt == 0 else 0)
    client = MlflowClient(uri)
    for run in bench.child_runs(tracker):
        history = client.get_metric_history(run.info.run_id, "bench_images_per_sec")
        assert sorted((m.step, m.value) for m in history) == [(1, 100.0), (2, 200.0)]
        assert run.data.metrics["bench_images_per_sec"] == 200.0 and run.data.tags["bench_id"] == later_id
    assert tracker.tags_of(tracker.parent_run_id)[T.BENCHES] == "2"


def record_args(tracker):
    from tokensweep.sweep import bench

    _, runs_by_arch, _ = bench.read_architectures(tracker)
    return runs_by_arch, bench.child_runs(tracker)
