"""A new sqlite MLflow store opened by several processes at the same moment: created once, nothing lost
(and two drivers of one sweep started at the same moment: one runs it, the other is refused).

MLflow builds a new store's tables in whichever process touches the file first; two at once fail inside
its migration (alembic "expected to match one row ... 0 found", "table _alembic_tmp_metrics already
exists") and may leave the file half-built for good. Here: processes released at the same instant on one
new store (three of the platform's writers and a user's script with a plain MlflowClient), and then what
a user really does - two sweeps, `mlflow ui` (as the README suggests) and a script polling the store,
all started together on a store that does not exist yet.
"""

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path


from helpers import base_env, BIN, CLI, free_port
from rel_helpers import ONE_CPU_NO_EXTRAS, TINY_TRIAL_TOML, wait_for
from sweep_helpers import sweep_runs


# says it is ready once MLflow is imported, waits for the go file, then makes one first contact with the store
OPENER = """
import os, sys, time
uri, go, kind, name = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if kind == "platform":
    from tokensweep.tracking.tracker import SweepTracker
else:
    from mlflow import MlflowClient
open(f"{go}.{name}.ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
if kind == "platform":  # what `tokensweep run` does first: the sweep's experiment
    SweepTracker(uri, name).ensure_experiment()
else:  # a user's script
    MlflowClient(uri).search_experiments()
print("opened")
"""

# polls the store until told to stop, as a script watching a sweep would
READER = """
import os, sys, time
from tokensweep.tracking.store import open_store
uri, stop_file = sys.argv[1], sys.argv[2]
client, seen = open_store(uri), 0
while not os.path.exists(stop_file):
    experiments = client.search_experiments()
    seen = max(seen, len(client.search_runs([e.experiment_id for e in experiments], max_results=1000)))
    time.sleep(0.2)
print(f"runs seen: {seen}")
"""


def _complete(db: Path) -> bool:
    import sqlite3

    with sqlite3.connect(db) as conn:
        leftovers = conn.execute("select count(*) from sqlite_master where name like '%alembic_tmp%'").fetchone()[0]
        default = conn.execute("select count(*) from experiments where experiment_id = 0").fetchone()[0]
    return leftovers == 0 and default == 1


def test_processes_opening_a_new_store_at_the_same_instant(tmp_path):
    """Three platform writers and a plain MlflowClient, released together: all open it, no traceback."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    go = tmp_path / "go"  # released together once every process has imported MLflow
    kinds = [("platform", "a"), ("platform", "b"), ("platform", "c"), ("plain", "-")]
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, uri, str(go), kind, name], env=base_env(), cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for kind, name in kinds
    ]
    ready = lambda: all(Path(f"{go}.{name}.ready").exists() for _, name in kinds)  # noqa: E731
    wait_for(ready, 180, "every process to import MLflow", interval=0.05, alive=lambda: all(p.poll() is None for p in procs))
    go.touch()
    outputs = [p.communicate(timeout=180) for p in procs]
    for (kind, name), proc, (out, err) in zip(kinds, procs, outputs):
        assert proc.returncode == 0 and "Traceback" not in err, (kind, name, err[-3000:])
        assert out.strip() == "opened"
    assert _complete(db)
    from mlflow import MlflowClient

    names = {e.name for e in MlflowClient(uri).search_experiments()}
    assert names == {"Default", "a", "b", "c"}


SPEC = f"""
[sweep]
name = "{{name}}"

[trial]{TINY_TRIAL_TOML}epochs = 1
tiny_train_per_class = 20

[[variants]]
name = "only"
{ONE_CPU_NO_EXTRAS}"""  # the race is the store's creation: the bench stage after training adds nothing to it


def test_two_sweeps_mlflow_ui_and_a_reader_start_together_on_a_new_store(tmp_path, ray_head):
    """... and a second driver of one of the sweeps, started at the same moment: of the two drivers of
    `race-a`, one runs it and the other is refused in one line naming the first (exit 2)."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    stop_file = tmp_path / "stop-reading"
    for name in ("race-a", "race-b"):
        (tmp_path / f"{name}.toml").write_text(SPEC.format(name=name))
    port = free_port()
    ui_env = base_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no job runners: 2 cores
    sweeps = {"race-a": "race-a", "race-a-again": "race-a", "race-b": "race-b"}  # process -> the sweep it runs
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in (*sweeps, "ui", "reader")}
    procs = {}
    try:
        for name, sweep in sweeps.items():
            args = ["run", tmp_path / f"{sweep}.toml", "--address", ray_head.address, "--tracking-uri", uri, "--quiet"]
            procs[name] = subprocess.Popen(CLI + [str(a) for a in args], cwd=tmp_path, env=ray_head.env, stdout=logs[name],
                                           stderr=subprocess.PIPE if name.startswith("race-a") else subprocess.STDOUT,
                                           text=True)  # fmt: skip
        ui = [str(BIN / "mlflow"), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        procs["ui"] = subprocess.Popen(ui, cwd=tmp_path, env=ui_env, stdout=logs["ui"], stderr=subprocess.STDOUT, start_new_session=True)
        procs["reader"] = subprocess.Popen([sys.executable, "-c", READER, uri, str(stop_file)], cwd=tmp_path, env=base_env(),
                                           stdout=logs["reader"], stderr=subprocess.STDOUT)  # fmt: skip
        errors = {name: procs[name].communicate(timeout=600)[1] for name in ("race-a", "race-a-again")}
        procs["race-b"].wait(timeout=600)
        stop_file.touch()
        procs["reader"].wait(timeout=60)
        wait_for(lambda: _answers(port), 120, "mlflow ui to answer", alive=lambda: procs["ui"].poll() is None)
    finally:
        stop_file.touch()
        for name, proc in procs.items():
            if proc.poll() is None:
                if name == "ui":
                    os.killpg(proc.pid, signal.SIGTERM)
                else:
                    proc.terminate()
                proc.wait(timeout=30)
        for log in logs.values():
            log.close()
    output = {name: (tmp_path / f"{name}.log").read_text() + errors.get(name, "") for name in logs}
    # the two drivers of race-a: one ran it, the other was refused before Ray started
    codes = sorted((procs[name].returncode, name) for name in ("race-a", "race-a-again"))
    assert [code for code, _ in codes] == [0, 2], {name: output[name][-3000:] for name in procs}
    winner, loser = codes[0][1], codes[1][1]
    refusal = errors[loser].strip().splitlines()
    assert refusal == [refusal[0]] and refusal[0].startswith(
        f"tokensweep run: error: sweep 'race-a' is already being run by pid {procs[winner].pid} on host "
    ), errors[loser]
    assert procs["race-b"].returncode == 0, output["race-b"][-4000:]
    assert procs["reader"].returncode == 0, output["reader"][-4000:]
    for name, text in output.items():
        assert "Traceback" not in text and "Online migration" not in text, (name, text[-4000:])
    assert _complete(db)
    for name in ("race-a", "race-b"):  # every run recorded, once
        parents, children = sweep_runs(db, name)
        assert [p.info.status for p in parents] == ["FINISHED"]
        assert [(c.info.run_name, c.info.status) for c in children] == [("only", "FINISHED")]


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
        return True
    except OSError:
        return False
