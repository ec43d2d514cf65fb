"""A plan's speeds from earlier runs in the MLflow store (a real sqlite store, its runs written by the sweep's own
SweepTracker under vocab's names), the order of the sources, and an Optuna search's confirmation stage costed."""

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SWEEPS
from tokensweep import plan as P
from tokensweep.cli import main
from tokensweep.spec import load_spec
from tokensweep.tracking.history import RunHistory
from tokensweep.tracking.tracker import SweepTracker
from trials.measure.calibrate import Calibration

H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"
PATCH_ONLY = ["--set", 'grid.embedding=["patch"]']
TRAIN_IMAGES, VAL_IMAGES = 126_689, 5_000
LOGGED_EPOCHS = 2  # the earlier runs trained 2 epochs; the plan is for the spec's 300
_trial_ids = itertools.count()


def _imagenet_like(root: Path) -> str:
    for split in ("train", "val"):
        (root / "imagenet100" / split).mkdir(parents=True, exist_ok=True)
    return str(root / "imagenet100")


def _table6_patch(data_dir: str):
    spec = load_spec(SWEEPS / "paper-table6.toml", [PATCH_ONLY[1]], data_dir=data_dir)
    return spec.variants[0].config


def log_trial(tracker: SweepTracker, config, *, device=H100, train=1500.0, epoch_rate=1200.0, infer=4000.0,
              epoch_s=100.0, beyond_epochs_s=30.0, status="FINISHED", gpu_shared=False, precision="bf16") -> None:
    """One trial's run as a sweep records it: params, its data set, every epoch, the final measurement, its end."""
    n = next(_trial_ids)
    config = config.replace(epochs=LOGGED_EPOCHS)
    run_id = tracker.start_child(f"trial_{n:05d}", f"trial-{n}", config.params(), {"gpu_shared": gpu_shared})
    data = {"name": config.dataset, "digest": "0123abcd", "source": config.data_dir or "/data", "source_kind": "folder",
            "sizes": {"train": TRAIN_IMAGES, "val": VAL_IMAGES}, "classes": 100, "form": "original"}  # fmt: skip
    for epoch in range(1, LOGGED_EPOCHS + 1):
        result = {"epoch": epoch, "top1": 10.0 * epoch, "epoch_time_s": epoch_s, "train_images_per_sec_epoch": epoch_rate}
        if epoch == 1:
            result["_dataset"] = data
        if epoch == LOGGED_EPOCHS:
            result.update(train_images_per_sec=train, images_per_sec=infer, device=device, precision=precision,
                          threads=config.threads or 8, bench_batch=config.bench_batch, gpu_shared=gpu_shared)  # fmt: skip
        tracker.log_result(run_id, result, step=epoch)
    start = tracker.client.get_run(run_id).info.start_time
    wall_s = LOGGED_EPOCHS * (epoch_s + P.EPOCH_OVERHEAD_S) + P.TRIAL_SETUP_S + beyond_epochs_s
    tracker.client.set_terminated(run_id, status=status, end_time=start + int(wall_s * 1000))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, str]:
    """(tracking URI, data dir): earlier runs of table 6's patch architecture, most of which a plan must not use."""
    root = tmp_path_factory.mktemp("history")
    data_dir = _imagenet_like(root)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = SweepTracker(uri, "paper-table6")
    tracker.start_parent(tune_path=str(root / "tune"), command="tokensweep run", tags={}, spec_text="", spec_name="t.toml", resolved={})
    patch = _table6_patch(data_dir)
    for train, rate, beyond in ((1400.0, 1100.0, 20.0), (1500.0, 1200.0, 30.0), (1700.0, 1300.0, 40.0)):
        log_trial(tracker, patch, train=train, epoch_rate=rate, beyond_epochs_s=beyond, infer=train * 8 / 3)
    log_trial(tracker, patch, device=A100, train=900.0)  # another GPU model, with fewer runs
    log_trial(tracker, patch, train=99_999.0, status="FAILED")
    log_trial(tracker, patch, train=50.0, gpu_shared=True)  # measured while trials shared the GPU
    log_trial(tracker, patch.replace(batch_size=64), train=5000.0)  # another batch
    log_trial(tracker, patch, train=777.0, precision="fp32")  # another precision
    for _ in range(4):  # the only runs at batch 32: a CPU's
        log_trial(tracker, patch.replace(batch_size=32), device="cpu: Some Xeon", train=10.0, precision="bf16")
    return uri, data_dir


def _plan(args, capsys) -> dict:
    assert main(["plan", *args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_a_gpu_plan_on_a_cpu_machine_takes_the_medians_of_earlier_runs_on_one_gpu_model(store, capsys):
    uri, data_dir = store
    plan = _plan([str(SWEEPS / "paper-table6.toml"), *PATCH_ONLY, "--data-dir", data_dir, "--gpus", "8",
                  "--tracking-uri", uri], capsys)  # fmt: skip
    (row,) = plan["architectures"]
    assert row["source"] == "mlflow: 3 runs" and row["device"] == H100
    assert row["train_images_per_sec"] == 1500.0 and row["loader_images_per_sec"] == 1200.0
    assert row["eval_images_per_sec"] == pytest.approx(4000.0)
    # 300 epochs of 989 batches of 128 at the epochs' 1200 img/s (the slower), validation at 4000 img/s, and the
    # runs' median 30 s beyond their epochs
    expected = Calibration(device=H100, batch=128, precision="bf16", threads=0, workers=8, train_images_per_sec=1500.0,
                           eval_images_per_sec=4000.0, loader_images_per_sec=1200.0, setup_s=30.0, measure_s=0.0,
                           train_images=TRAIN_IMAGES, val_images=VAL_IMAGES)  # fmt: skip
    assert row["trial_s"] == pytest.approx(P.trial_seconds(_table6_patch(data_dir), expected), rel=1e-6)
    assert row["trial_s"] > 300 * (TRAIN_IMAGES // 128) * 128 / 1200
    assert plan["device"] == "GPU" and plan["device_hours"] == pytest.approx(plan["per_trial"][0]["device_hours"])


def test_a_calibration_file_comes_before_the_store(store, tmp_path, capsys):
    uri, data_dir = store
    config = _table6_patch(data_dir)
    measured = Calibration(device=H100, batch=128, precision="bf16", threads=0, workers=8, train_images_per_sec=3000.0,
                           eval_images_per_sec=9000.0, loader_images_per_sec=3000.0, setup_s=1.0, measure_s=1.0,
                           train_images=TRAIN_IMAGES, val_images=VAL_IMAGES)  # fmt: skip
    cal = tmp_path / "h100.json"
    cal.write_text(json.dumps({"calibrations": [{"key": P.arch_key(config), "calibration": measured.to_dict()}]}))
    plan = _plan([str(SWEEPS / "paper-table6.toml"), *PATCH_ONLY, "--data-dir", data_dir, "--gpus", "8",
                  "--tracking-uri", uri, "--calibration", str(cal)], capsys)  # fmt: skip
    assert [(a["source"], a["train_images_per_sec"]) for a in plan["architectures"]] == [("file", 3000.0)]


def test_a_calibration_here_comes_before_the_store_when_here_is_the_trials_device(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    uri, _ = store
    one = ["--set", 'grid.embedding=["supertoken"]', "--set", "grid.cluster_iters=[1]"]  # one architecture
    config = load_spec(SWEEPS / "smoke.toml", one[1::2]).variants[0].config
    tracker = SweepTracker(uri, "smoke")
    tracker.start_parent(tune_path=str(tmp_path / "tune"), command="", tags={}, spec_text="", spec_name="s.toml", resolved={})
    for _ in range(3):
        log_trial(tracker, config, device="cpu: This CPU", train=1.0, precision="fp32")
    assert P.history_calibration(config, P.ON_CPU, RunHistory(uri))[1] == "mlflow: 3 runs"  # the store has them
    plan = _plan([str(SWEEPS / "smoke.toml"), *one, "--cpus", "2", "--tracking-uri", uri], capsys)
    assert [a["source"] for a in plan["architectures"]] == ["measured"]
    assert plan["architectures"][0]["train_images_per_sec"] > 1.0


def test_no_store_is_no_history_and_none_is_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = [str(SWEEPS / "paper-table6.toml"), *PATCH_ONLY, "--data-dir", _imagenet_like(tmp_path), "--gpus", "8"]
    assert main(["plan", *spec]) == 2  # the default store, sqlite:///<cwd>/mlflow.db, does not exist
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"nor has the MLflow store sqlite:///{tmp_path}/mlflow.db finished runs of it" in err
    assert "pass --calibration FILE" in err
    assert main(["plan", *spec, "--tracking-uri", f"sqlite:///{tmp_path}/elsewhere.db"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imagenet100"]  # no store made, neither default nor named


def test_a_store_with_runs_only_on_the_cpu_gives_no_gpu_estimate(store, capsys):
    """At batch 32 the store has only a CPU's runs: they never stand in for a GPU, and the plan is refused."""
    uri, data_dir = store
    assert main(["plan", str(SWEEPS / "paper-table6.toml"), *PATCH_ONLY, "--set", "trial.batch_size=32",
                 "--data-dir", data_dir, "--gpus", "8", "--tracking-uri", uri]) == 2  # fmt: skip
    assert "finished runs of it on one" in capsys.readouterr().err


# --- an Optuna search: its confirmation seeds ---------------------------------------------------


def test_the_expected_front_is_one_for_one_objective_and_the_harmonic_number_for_two():
    assert P.expected_front(32, 1) == 1.0
    assert P.expected_front(4, 2) == pytest.approx(1 + 1 / 2 + 1 / 3 + 1 / 4)
    rng = random.Random(0)

    def front_size(n, d):
        points = [[rng.random() for _ in range(d)] for _ in range(n)]
        return sum(not any(all(q[i] > p[i] for i in range(d)) for q in points) for p in points)

    # 2000 draws of 8 points: the front's size varies by ~1.1 (two objectives) to ~1.3 (three), so the mean's
    # standard error is ~0.03 and 0.1 is over 3 of them
    for d in (2, 3):
        assert sum(front_size(8, d) for _ in range(2000)) / 2000 == pytest.approx(P.expected_front(8, d), abs=0.1)


def _corner_calibrations(path: Path, spec) -> None:
    """A GPU node's calibrations of the search's cheapest and dearest corner (what --save-calibration writes)."""
    entries = []
    for i, (_, config) in enumerate(P.trial_configs(spec)):
        c = Calibration(device=H100, batch=128, precision="bf16", threads=0, workers=8, train_images_per_sec=2000.0 - 500 * i,
                        eval_images_per_sec=6000.0, loader_images_per_sec=3000.0, setup_s=20.0, measure_s=30.0,
                        train_images=TRAIN_IMAGES, val_images=VAL_IMAGES)  # fmt: skip
        entries.append({"key": P.arch_key(config), "calibration": c.to_dict()})
    path.write_text(json.dumps({"calibrations": entries}))


def test_an_optuna_search_plans_its_confirmation_seeds_after_the_search(tmp_path, capsys):
    data_dir = _imagenet_like(tmp_path)
    seeds = ["--set", "search.confirm_seeds=[0, 1, 2]"]  # 0 is the search's own seed: not trained again
    spec = load_spec(SWEEPS / "channels-optuna.toml", [seeds[1]], data_dir=data_dir)
    cal = tmp_path / "corners.json"
    _corner_calibrations(cal, spec)
    args = [str(SWEEPS / "channels-optuna.toml"), *seeds, "--data-dir", data_dir, "--gpus", "4", "--calibration", str(cal)]
    plan = _plan(args, capsys)
    confirmation = plan["confirmation"]
    # 32 samples on two objectives: a front of round(H_32) = 4 configurations, each trained on seeds 1 and 2
    assert (confirmation["front"], confirmation["seeds"], confirmation["trials"]) == (4, 2, 8)
    assert confirmation["most_trials"] == 64 and plan["trials"] == 32 + 8
    span = plan["span"]
    mean_h = (span["cheapest_s"] + span["dearest_s"]) / 2 / 3600
    # eight trials at the search's mean on four GPUs: the first four also start their slot's worker
    assert confirmation["device_hours"] == pytest.approx(8 * mean_h + 4 * P.WORKER_START_S / 3600)
    assert plan["device_hours"] == pytest.approx(sum(t["device_hours"] for t in plan["per_trial"]))
    search_wall = P.makespan([t["trial_s"] for t in plan["per_trial"][:32]], 4)
    assert confirmation["wall_s"] == pytest.approx(2 * mean_h * 3600 + P.WORKER_START_S)
    assert plan["wall_s"] == pytest.approx(plan["fixed_s"] + search_wall + confirmation["wall_s"])
    assert main(["plan", *args]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "confirmation:" in x)
    assert "8 trial(s), a front of ~4 configuration(s) x 2 new seed(s) (at most 64)" in line and "GPU-hours" in line


def test_a_search_without_confirmation_seeds_plans_none(tmp_path, capsys):
    data_dir = _imagenet_like(tmp_path)
    cal = tmp_path / "corners.json"
    _corner_calibrations(cal, load_spec(SWEEPS / "channels-optuna.toml", data_dir=data_dir))
    plan = _plan([str(SWEEPS / "channels-optuna.toml"), "--data-dir", data_dir, "--gpus", "4", "--calibration", str(cal)], capsys)
    assert "confirmation" not in plan and plan["trials"] == 32


# --- the slots: --gpus / --cpus, a running cluster's resources, this machine ----------------------


def test_the_flags_win_over_the_cluster_which_wins_over_this_machine():
    cluster = P.Resources(cluster={"CPU": 6.0, "GPU": 2.0}, address="head:6379")
    assert cluster.count(P.ON_GPU) == (2.0, "the cluster at head:6379") and cluster.count(P.ON_CPU)[0] == 6.0
    assert P.Resources(gpus=8, cluster={"GPU": 2.0}, address="head:6379").count(P.ON_GPU) == (8, "--gpus")
    assert P.Resources().count(P.ON_CPU)[1] == "this machine"
    smoke = load_spec(SWEEPS / "smoke.toml")  # 4 trials of 1 CPU each
    assert P.slots_of(smoke, P.Resources(cluster={"CPU": 3.0}, address="head:6379"), P.ON_CPU) == 3
    assert P.slots_of(smoke, P.Resources(cpus=1, cluster={"CPU": 3.0}, address="head:6379"), P.ON_CPU) == 1


def test_a_gpu_plan_on_a_cluster_without_gpus_names_the_cluster(tmp_path):
    spec = load_spec(SWEEPS / "paper-table6.toml", data_dir=_imagenet_like(tmp_path))
    with pytest.raises(P.SpecError, match="but the cluster at head:6379 has 0: pass --gpus N"):
        P.plan_sweep(spec, P.Resources(cluster={"CPU": 64.0}, address="head:6379"))


def test_planning_imports_mlflow_only_to_read_history_and_never_ray(store, tmp_path):
    """A store that does not exist is not opened; one with history is read through MLflow; Ray stays out."""
    uri, data_dir = store
    spec = [str(SWEEPS / "paper-table6.toml"), *PATCH_ONLY, "--data-dir", data_dir, "--gpus", "8"]
    code = (
        "import sys; from tokensweep.cli import main\n"
        "def loaded(): return [m for m in ('ray', 'mlflow') if m in sys.modules]\n"
        f"print(main(['plan', *{spec!r}, '--tracking-uri', {f'sqlite:///{tmp_path}/none.db'!r}]), loaded())\n"
        f"print(main(['plan', *{spec!r}, '--tracking-uri', {uri!r}, '--json']), loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout.splitlines()
    assert [out[0], out[-1]] == ["2 []", "0 ['mlflow']"]
