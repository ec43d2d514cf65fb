"""`tokensweep plan` and the budget without a running Ray: the estimate's arithmetic, the budget rule in the
grid's searcher, bad budgets, and plans from a calibration file (a GPU cluster planned from this CPU machine)."""

import json

import pytest

from helpers import SWEEPS
from tokensweep import plan as P
from tokensweep.cli import main
from tokensweep.spec import load_spec
from tokensweep.sweep import budget, tuner
from tokensweep.payload import Platform, grid_config
from trials.measure.calibrate import Calibration

PLATFORM = Platform("sqlite:////x.db", "smoke", True, 10.0, ())
H100 = "NVIDIA H100 80GB HBM3"


def calibration(device="cpu: test", workers=0, train=1000.0, loader=4000.0, eval_=5000.0, **kw) -> Calibration:
    return Calibration(device=device, batch=64, precision="fp32", threads=1, workers=workers, train_images_per_sec=train,
                       eval_images_per_sec=eval_, loader_images_per_sec=loader, setup_s=kw.get("setup_s", 2.0),
                       measure_s=kw.get("measure_s", 3.0), train_images=kw.get("train_images", 6400),
                       val_images=kw.get("val_images", 1000))  # fmt: skip


def test_a_step_is_compute_plus_loading_in_process_and_the_slower_of_the_two_with_workers():
    assert calibration(workers=0).step_s(64) == pytest.approx(64 / 1000 + 64 / 4000)
    assert calibration(workers=4).step_s(64) == pytest.approx(64 / 1000)
    assert calibration(workers=4, loader=500.0).step_s(64) == pytest.approx(64 / 500)  # the loader bounds it


def test_a_trial_is_setup_epochs_of_steps_and_validation_and_the_final_measurement():
    config = load_spec(SWEEPS / "smoke.toml").variants[0].config.replace(epochs=5)
    c = calibration()
    steps = 6400 // config.batch_size  # 100 full batches
    epoch = steps * c.step_s(config.batch_size) + 1000 / 5000 + P.EPOCH_OVERHEAD_S
    assert P.trial_seconds(config, c) == pytest.approx(P.TRIAL_SETUP_S + 2.0 + 5 * epoch + 3.0)
    capped = config.replace(max_steps_per_epoch=10)
    assert P.trial_seconds(capped, c) < P.trial_seconds(config, c)


def test_trials_start_in_order_on_the_first_free_slot():
    assert P.makespan([10, 10, 10, 10], 2) == 20
    assert P.makespan([30, 10, 10, 10], 2) == 30  # the three short ones share the second slot
    assert P.makespan([5, 5, 5], 1) == 15
    assert P.makespan([7, 3], 4) == 7


def _gate(budget_h, planned_h=1.0, devices=1.0):
    return budget.BudgetGate(budget_h, budget.TrialCost(devices, {"a": planned_h, "b": planned_h, "c": planned_h}))


def test_the_budget_counts_spent_hours_running_trials_and_the_next_trials_plan():
    gate = _gate(2.5)
    assert gate.allows("a", now=0) and (gate.started("1", "a", now=0) or True)
    assert gate.allows("b", now=0) and (gate.started("2", "b", now=0) or True)
    assert not gate.allows("c", now=0)  # 1 + 1 running + 1 planned > 2.5
    gate.ended("1", now=1800)  # half an hour on one device: 0.5 h spent, under its plan
    assert gate.spent_h == pytest.approx(0.5) and gate.allows("c", now=1800)  # 0.5 + 1 + 1 <= 2.5
    overrun = _gate(2.5)
    overrun.started("1", "a", now=0)
    assert overrun.allows("b", now=0) and not overrun.allows("b", now=3600 * 1.6)  # a's 1.6 h run so far count
    assert _gate(None).allows("c") and _gate(2.5).summary() is None


def _searcher(gate):
    spec = load_spec(SWEEPS / "smoke.toml")
    configs = [grid_config(i, v.name, v.values, PLATFORM) for i, v in enumerate(spec.variants)]
    return tuner.GridSearcher(configs, gate), [v.name for v in spec.variants]


def test_the_grid_waits_while_trials_run_then_names_those_the_budget_leaves(tmp_path):
    names = [v.name for v in load_spec(SWEEPS / "smoke.toml").variants]
    gate = budget.BudgetGate(2.5, budget.TrialCost(1.0, dict.fromkeys(names, 1.0)))
    searcher, _ = _searcher(gate)
    assert searcher.suggest("t1")["variant"] == names[0]
    assert searcher.suggest("t2")["variant"] == names[1]
    assert searcher.suggest("t3") is None  # trials run: what they spend decides
    gate.running = {k: (n, 0.0) for k, (n, _) in gate.running.items()}  # started at the epoch: long overrun
    searcher.on_trial_complete("t1"), searcher.on_trial_complete("t2")
    assert searcher.suggest("t3") == tuner.Searcher.FINISHED
    assert gate.not_started == names[2:] and "2 trial(s) not started" in gate.summary()
    searcher.save(str(tmp_path / "state.json"))
    larger = budget.BudgetGate(1e9, gate.cost)
    again, _ = _searcher(larger)
    again.restore(str(tmp_path / "state.json"))
    assert gate.spent_h > 0 and larger.spent_h == pytest.approx(gate.spent_h)  # the hours spent come back with the grid
    assert [again.suggest("t3")["variant"], again.suggest("t4")["variant"]] == names[2:]


def test_a_restored_grid_search_is_not_finished_so_a_larger_budget_goes_on():
    search = budget.GridSearch(tuner.GridSearcher([], None))
    state = {"counter": 2, "total_samples": 4, "finished": True, "experiment": None}
    search.set_state(state)
    assert not search.is_finished()


@pytest.mark.parametrize("value", ["-1", "nan", '"ten"', "0", "inf", "true"])
def test_a_bad_budget_is_one_line_and_exit_2(value, capsys):
    assert main(["plan", str(SWEEPS / "smoke.toml"), "--set", f"sweep.budget_hours={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "sweep.budget_hours must be a positive number of device-hours" in err


def _imagenet_like(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "imagenet100" / split).mkdir(parents=True)
    return str(tmp_path / "imagenet100")


def _gpu_calibration_file(path, device=H100) -> None:
    """What `plan --save-calibration` writes on a GPU node, for paper-table6's three architectures."""
    spec = load_spec(SWEEPS / "paper-table6.toml", data_dir=_imagenet_like(path.parent / "data"))
    entries = []
    for i, v in enumerate(spec.variants):
        c = calibration(device=device, workers=8, train=1500.0 - 300 * i, loader=3000.0, eval_=4500.0,
                        train_images=126_689, val_images=5_000, setup_s=20.0, measure_s=30.0)  # fmt: skip
        entries.append({"key": P.arch_key(v.config), "calibration": c.to_dict()})
    path.write_text(json.dumps({"calibrations": entries}))


def test_paper_table6_on_8_gpus_from_a_calibration_file(tmp_path, capsys):
    cal = tmp_path / "h100.json"
    _gpu_calibration_file(cal)
    args = ["plan", str(SWEEPS / "paper-table6.toml"), "--data-dir", _imagenet_like(tmp_path), "--gpus", "8",
            "--calibration", str(cal)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "GPU-hours" in out and "3 trial(s) on 3 GPU slot(s)" in out and out.count("file") == 3
    assert main([*args, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    # 300 epochs x 989 steps of 128 at 1500 img/s (patch): ~15.5 h of steps alone
    patch = next(a for a in plan["architectures"] if a["model"] == "vit_s_patch")
    steps_s = 300 * (126_689 // 128) * 128 / 1500
    assert steps_s < patch["trial_s"] < steps_s * 1.1
    assert plan["device"] == "GPU" and plan["trials"] == 3
    assert plan["device_hours"] == pytest.approx(sum(t["trial_s"] for t in plan["per_trial"]) / 3600)
    assert plan["wall_s"] < plan["device_hours"] * 3600  # three trials at once on eight GPUs


def test_a_cpu_calibration_is_not_presented_as_a_gpu_estimate(tmp_path, capsys):
    cal = tmp_path / "cpu.json"
    _gpu_calibration_file(cal, device="cpu: some xeon")
    assert main(["plan", str(SWEEPS / "paper-table6.toml"), "--data-dir", _imagenet_like(tmp_path), "--gpus", "8",
                 "--calibration", str(cal)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "was measured on 'cpu: some xeon', but the trials run on the GPU" in err


def test_a_gpu_plan_without_gpus_or_calibration_says_what_it_needs(tmp_path, capsys):
    spec = [str(SWEEPS / "paper-table6.toml"), "--data-dir", _imagenet_like(tmp_path)]
    assert main(["plan", *spec]) == 2
    assert "pass --gpus N" in capsys.readouterr().err
    assert main(["plan", *spec, "--gpus", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pass --calibration FILE" in err and "--save-calibration" in err


def test_plan_json_is_alone_on_stdout_and_a_second_plan_reads_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    saved = tmp_path / "cal.json"
    assert main(["plan", str(SWEEPS / "smoke.toml"), "--json", "--cpus", "2", "--save-calibration", str(saved)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["trials"] == 4 and first["slots"] == 2 and first["device"] == "CPU"
    assert {a["source"] for a in first["architectures"]} == {"measured"}
    for a in first["architectures"]:
        assert a["train_images_per_sec"] > 0 and a["loader_images_per_sec"] > 0 and a["trial_s"] > 0
    assert len(json.loads(saved.read_text())["calibrations"]) == 4
    assert main(["plan", str(SWEEPS / "smoke.toml"), "--json", "--cpus", "2"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert {a["source"] for a in second["architectures"]} == {"cache"}
    assert second["device_hours"] == pytest.approx(first["device_hours"])  # the same figures, not measured again
    assert len(list((tmp_path / "cache" / "tokensweep" / "calibrations").glob("*.json"))) == 4



class Trial:
    def __init__(self, trial_id: str, name: str):
        self.trial_id, self.name, self.last_result = trial_id, name, {}
        self.config = grid_config(0, name, {"model": "vit_tiny_patch"}, PLATFORM)

    def __str__(self):
        return self.name


def test_the_view_shows_device_hours_spent_left_by_the_plan_corrected_by_finished_trials_and_its_eta():
    import io

    from tokensweep.sweep.progress import SweepProgress

    now = [0.0]
    cost = budget.TrialCost(2.0, {"a": 1.0, "b": 1.0, "c": 1.0}, wall_s=7200.0, default_h=1.0)  # 2 cores a trial
    view = SweepProgress(3, out=io.StringIO(), tty=False, clock=lambda: now[0], cost=cost)
    view.setup()
    a, b = Trial("1", "a"), Trial("2", "b")
    view.on_trial_start(0, [], a), view.on_trial_start(0, [], b)
    now[0] = 3600.0  # a ends after an hour on 2 cores: 2 device-hours, twice its plan
    view.on_trial_complete(0, [], a)
    # spent: a's 2 + b's 2 so far; left: b's plan is spent (0) + c's 1, doubled by a's overrun = 2 device-hours on 2 cores: 1 h
    assert view.cost_text() == "; 4 device-h spent, 2 left by the plan, ETA 1h00m"
    assert view.summary_line().endswith(view.cost_text())
