"""What `tokensweep run` ends with: how to open the sweep's runs in MLflow, and the parent run's record
of the whole sweep (its summary metrics, its times over every --resume)."""

import re
import types

import pytest

from tokensweep.commands.run import MLFLOW_UI_PORT, compare_runs_lines, print_outcome
from tokensweep.sweep import SweepOutcome, TrialOutcome


def test_the_mlflow_ui_link_names_the_port_it_assumes_and_how_to_change_it():
    command, link = compare_runs_lines("sqlite:////work/mlflow.db", "3")
    port = re.search(r" --port (\d+)$", command)
    assert command.startswith("compare runs: mlflow ui --backend-store-uri sqlite:////work/mlflow.db") and port
    assert link.startswith(f"  then open http://127.0.0.1:{port[1]}/#/experiments/3/runs?") and int(port[1]) == MLFLOW_UI_PORT
    assert link.endswith("(with another --port, the same link on that port)")


def test_a_server_is_linked_as_it_is_without_its_password():
    assert compare_runs_lines("https://me:secret@mlflow.example:8443", "3") == [
        "compare runs: https://mlflow.example:8443/#/experiments/3/runs?workflowType=machine_learning"
    ]
    assert compare_runs_lines("postgresql://db/mlflow", "3") == []


@pytest.mark.parametrize("quiet", [True, False])
def test_a_failed_trials_cause_is_under_the_table_when_nothing_said_it_before(quiet, capsys):
    outcome = SweepOutcome(
        exit_code=0, parent_run_id="p", tune_path="/t/s", timings={"total_s": 1.0},
        trials=[TrialOutcome("a", "TERMINATED", {"top1": 50.0}), TrialOutcome("b", "ERROR", {}, "NonFiniteLoss: non-finite training loss")],
    )  # fmt: skip
    print_outcome(types.SimpleNamespace(name="s", source="s.toml"), outcome, "sqlite:////t/m.db", reasons=quiet)
    lines = capsys.readouterr().out.splitlines()
    assert "sweep 's': 2 trial(s), 1 finished, 1 failed; MLflow parent run p" in lines
    causes = [line for line in lines if "failed: " in line]
    assert causes == (["  b failed: NonFiniteLoss: non-finite training loss"] if quiet else [])  # else the progress view said it


# --- the parent run: what the sweep found, and how long the whole sweep took ------------------------------


