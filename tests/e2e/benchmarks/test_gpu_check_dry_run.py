"""The device check (`python -m benchmarks gpu`) on CPU: its dry run end to end in a process where the
platform's packages cannot be imported, as on the GPU machines (its options, limits and helpers:
tests/unit/benchmarks/test_gpu_check.py).

No timing is asserted: the dry run's figures mean nothing, the test proves the code paths run.
"""

import json
import subprocess
import sys

import pytest

from benchmarks.gpu.plan import BUDGET_S

from blocked import blocked_env  # noqa: F401  (a fixture)
from helpers import REPO

PARTS = set(BUDGET_S)


def tree_state() -> dict:
    """Every file under benchmarks/results/ with its modification time, and whether .pytest_cache exists."""
    results = {str(p): p.stat().st_mtime_ns for p in (REPO / "benchmarks" / "results").rglob("*")}
    return {"results": results, "pytest_cache": (REPO / ".pytest_cache").exists()}


@pytest.fixture(scope="module")
def dry_run(blocked_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-dry-run")
    before = tree_state()
    done = subprocess.run([sys.executable, "-m", "benchmarks", "gpu", "--cpu-dry-run", "--out", str(out)], cwd=REPO,
                          env=blocked_env, capture_output=True, text=True, timeout=600)  # fmt: skip
    return done, out, before, tree_state()


def test_dry_run_passes_without_the_platform_packages(dry_run):
    done, out, _, _ = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads((out / "gpu.json").read_text())
    assert document["failures"] == 0
    assert set(document["part_seconds"]) == PARTS
    assert document["environment"]["device_type"] == "cpu"
    table = done.stdout.strip().splitlines()
    assert table[-1].startswith("0 failed check(s)")
    assert any(line.split()[:2] == ["part", "check"] for line in table[-40:])  # the table, printed last
    assert (out / "gpu.csv").read_text().startswith("part,check,status")
    assert (out / "gpu.md").read_text().startswith("# Benchmark: gpu")


def test_dry_run_covers_every_part(dry_run):
    rows = json.loads((dry_run[1] / "gpu.json").read_text())["rows"]
    by_check = {(r["part"], r["check"]): r for r in rows}
    for dtype in ("float32", "bfloat16"):
        for variant in ("compiled", "eager"):
            row = by_check[("correctness", f"clustering {variant} vs float64 reference, {dtype}")]
            assert row["status"] == "ok" and row["rel_err_out"] <= row["tolerance"]
    models = [check for part, check in by_check if part == "correctness" and "forward + backward" in check]
    assert len(models) == 3  # vit_tiny_patch, _conv, _supertoken
    assert by_check[("trial", "resumed from the checkpoint: trains epoch 2 only")]["status"] == "ok"
    speed = {r["check"]: r for r in rows if r["part"] == "speed"}
    for i in (1, 2, 3, 4):
        row = speed[f"vit_tiny_supertoken_i{i}"]
        assert row["train_images_per_sec"] > 0 and row["images_per_sec"] > 0 and row["mfu"] > 0
    assert speed["clustering fused vs STViT reference"]["value"] > 0
    loaders = [r for r in rows if r["part"] == "pipeline" and "images_per_sec" in r]
    assert {r["form"] for r in loaders} == {"default", "predecoded"}
    assert {r["data_form"] for r in loaders} == {"original", "resized_256_predecoded"}


def test_dry_run_writes_nothing_into_the_tree(dry_run):
    _, _, before, after = dry_run
    assert after == before  # results went to --out; pytest -m gpu ran with -p no:cacheprovider
