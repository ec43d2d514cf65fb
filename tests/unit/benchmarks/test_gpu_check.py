"""The device check (`python -m benchmarks gpu`) on CPU: its options, limits and helpers, and the blocker
that hides the platform's packages from its dry run (tests/e2e/benchmarks/test_gpu_check_dry_run.py).
"""

import importlib.util
import json
import subprocess
import sys
import tempfile
import time

import pytest
import torch

from benchmarks.__main__ import SECTIONS
from benchmarks.gpu.cli import PartTimeout, main, output_folder, parse_args, run_part, time_limit
from benchmarks.gpu.pipeline import steady_rate
from benchmarks.gpu.plan import dry_run_plan
from benchmarks.gpu.report import FAILED, Report

from blocked import BLOCKED, blocked_env  # noqa: F401  (blocked_env: a fixture)


def test_the_blocker_hides_the_platform_packages(blocked_env):
    # installed here (the project's venv has the platform); behind the blocker they look absent
    installed = [name for name in BLOCKED if importlib.util.find_spec(name) is not None]
    if not installed:
        pytest.skip("none of the blocked packages is installed here: nothing to hide")
    probe = f"import importlib.util as u; print([n for n in {BLOCKED!r} if u.find_spec(n) is not None])"
    hidden = subprocess.run([sys.executable, "-c", probe], env=blocked_env, capture_output=True, text=True)
    assert hidden.stdout.strip() == "[]", hidden.stderr
    for name in installed:
        done = subprocess.run([sys.executable, "-c", f"import {name}"], env=blocked_env, capture_output=True, text=True)
        assert done.returncode != 0 and f"No module named '{name}'" in done.stderr, name


def test_gpu_is_not_part_of_all():
    assert "gpu" not in SECTIONS


def test_dry_run_writes_to_a_new_temporary_folder_by_default():
    out = output_folder(parse_args(["--cpu-dry-run"]))
    assert out.is_dir() and not any(out.iterdir()) and out.is_relative_to(tempfile.gettempdir())
    out.rmdir()


def test_out_that_is_a_file_is_rejected_with_exit_code_2(tmp_path, capsys):
    file = tmp_path / "results.txt"
    file.write_text("")
    with pytest.raises(SystemExit) as stop:
        main(["--cpu-dry-run", "--out", str(file)])
    assert stop.value.code == 2
    assert "--out" in capsys.readouterr().err and file.read_text() == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="there is a CUDA device")
def test_without_cuda_the_real_run_says_so_and_exits_2(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 2
    assert "--cpu-dry-run" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_only_runs_the_parts_named(tmp_path, capsys):
    assert main(["--cpu-dry-run", "--only", "pipeline", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "gpu.json").read_text())
    assert list(document["part_seconds"]) == ["pipeline"] and document["failures"] == 0
    assert "workers to feed training" not in capsys.readouterr().out  # no training rate without part 3


def test_a_failing_part_is_recorded_and_the_next_runs(monkeypatch):
    ran = []

    def broken(plan, report, context):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setitem(sys.modules["benchmarks.gpu.cli"].PARTS, "correctness", broken)
    monkeypatch.setitem(sys.modules["benchmarks.gpu.cli"].PARTS, "trial", lambda p, r, c: ran.append("trial"))
    report = Report({"device": "cpu"}, {})
    for name in ("correctness", "trial"):
        run_part(name, dry_run_plan(), report, {})
    (failure,) = report.failures()
    assert failure["part"] == "correctness" and "illegal memory access" in failure["error"]
    assert ran == ["trial"] and set(report.part_seconds) == {"correctness", "trial"}
    assert "FAILED" in report.table()


def test_time_limit_stops_a_part_through_its_own_except_clauses():
    start = time.perf_counter()
    with pytest.raises(PartTimeout):
        with time_limit(0.2):
            while True:
                try:
                    time.sleep(0.01)
                except Exception:  # a per-check handler inside a part must not swallow the limit
                    pass
    assert time.perf_counter() - start < 5


def test_a_failed_check_sets_the_status_and_the_files_keep_it(tmp_path):
    report = Report({"device": "cpu", "torch_version": "x"}, {"dry_run": True})
    report.check("correctness", "within tolerance", False, rel_err_out=float("nan"))
    report.part_done("correctness", 1.0, 70)
    paths = report.write(tmp_path)
    document = json.loads(paths[1].read_text())
    assert document["failures"] == 1 and document["rows"][0]["status"] == FAILED
    assert document["rows"][0]["rel_err_out"] == "nan"  # JSON stays standard
    assert "FAILED" in paths[2].read_text()


def test_steady_rate_leaves_out_start_up_and_stragglers():
    # 10 batches of 4 images; the first 2 (workers starting) and the last 2 (stragglers) are slow
    times = [0.0, 5.0, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 9.0, 12.0]
    marks = [(t, 4) for t in times]
    assert steady_rate(marks, workers=2) == pytest.approx(4 * 5 / 0.5)  # batches 3-7 over 5.1 -> 5.6 s
    with pytest.raises(ValueError, match="too few"):
        steady_rate(marks[:1], workers=2)
