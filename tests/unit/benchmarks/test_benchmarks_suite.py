"""The benchmark suite runs end to end and writes what it promises. Correctness only: no timing is
asserted (the --quick figures mean nothing; they only prove the code paths run)."""

import csv

import pytest
import torch

from benchmarks.__main__ import SECTIONS, main
from benchmarks.clustering import stvit_baseline
from benchmarks.common import SectionResult, Target, format_targets
from benchmarks.data import DraftTrainTransform, Uint8TrainTransform, load_rgb_draft, write_jpegs
from trials.models.clustering import SuperTokenClustering
from trials.data import ImageFolder
from trials.data.imagefolder import load_rgb

ENV_COLUMNS = {"device", "device_type", "precision", "batch_size", "torch_version", "threads", "load_avg_1m"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    # every section but scale, whose quick run starts Ray (tests/unit/benchmarks/test_scale_benchmark.py, slow)
    assert main([*(s for s in SECTIONS if s != "scale"), "--quick", "--out-dir", str(out)]) == 0
    return out


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_section_writes_csv_with_environment_and_markdown(quick_run):
    for section in ("clustering", "models", "data", "platform"):
        rows = read_csv(quick_run / f"{section}.csv")
        assert rows, section
        assert ENV_COLUMNS <= set(rows[0]), section
        assert (quick_run / f"{section}.md").read_text().startswith(f"# Benchmark: {section}")
    index = (quick_run / "README.md").read_text()
    assert all(f"[{s}]({s}.md)" in index for s in ("clustering", "models", "data", "platform"))


def test_clustering_rows_compare_every_variant_with_the_baseline(quick_run):
    rows = read_csv(quick_run / "clustering.csv")
    assert {r["variant"] for r in rows} == {"stvit_reference", "tokensweep"}
    ours = [r for r in rows if r["variant"] == "tokensweep"]
    assert {r["iters"] for r in ours} == {"1", "3"}
    assert all(float(r["rel_err_out"]) < 1e-5 and float(r["rel_err_grad"]) < 1e-5 for r in ours)
    assert all(float(r["peak_mem_mb"]) > 0 for r in rows)


def test_models_rows_have_throughput_flops_and_ratios(quick_run):
    rows = {r["model"]: r for r in read_csv(quick_run / "models.csv")}
    assert {"vit_tiny_patch", "vit_tiny_conv", "vit_tiny_supertoken_i1", "vit_tiny_supertoken_i3"} <= set(rows)
    patch = float(rows["vit_tiny_patch"]["images_per_sec"])
    for name in ("vit_tiny_conv", "vit_tiny_supertoken_i3"):  # each ratio is the two rates of its own rows
        ratio = float(rows[name]["images_per_sec"]) / patch
        assert float(rows[name]["infer_vs_patch"]) == pytest.approx(ratio, rel=1e-3)  # CSV rounding: 6 digits
    assert float(rows["vit_tiny_supertoken_i3"]["train_images_per_sec"]) > 0
    assert float(rows["backbone (ViT blocks, no embedding)"]["gemm_fraction"]) > 0


def test_data_rows_cover_the_loader_paths_and_mixing(quick_run):
    rows = {r["pipeline"]: r for r in read_csv(quick_run / "data.csv")}
    assert {"decode", "train", "eval", "train_draft", "train_uint8", "train_cached", "mixup", "cutmix"} <= set(rows)
    assert all(float(rows[p]["images_per_sec"]) > 0 for p in ("train", "mixup"))
    assert int(rows["train"]["workers_h100_published"]) >= 1


def test_platform_section_is_skipped_in_quick_mode(quick_run):
    (row,) = read_csv(quick_run / "platform.csv")
    assert row["round"] == "skipped" and row["kind"] == "quick mode"


def test_baseline_is_stvit_algorithm():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12, 12, dtype=torch.float64)
    torch.testing.assert_close(stvit_baseline(x, 2, 3), SuperTokenClustering(2, 3)(x), rtol=1e-10, atol=1e-10)


def test_target_verdicts_and_table():
    met = Target("fast", 5.0, 4.0)
    missed = Target("small", 0.6, 0.5, "x", higher_is_better=False)
    unmeasured = Target("gpu", None, 5.0)
    reported = Target("overhead", 1.5, None, "s")
    assert [t.verdict() for t in (met, missed, unmeasured, reported)] == ["met", "MISSED", "not measured", "reported"]
    table = format_targets([SectionResult("s", targets=[met, missed, unmeasured, reported])])
    assert "5x" in table and ">= 4x" in table and "<= 0.5x" in table and "none yet" in table


def test_cheaper_loader_paths_give_the_recipe_shapes(tmp_path):
    split = write_jpegs(tmp_path, 4)
    paths = sorted(str(p) for p in split.rglob("*.jpg"))
    assert len(ImageFolder(split, lambda img, g: img)) == 4
    img, scale = load_rgb_draft(paths[0], (100, 75))
    assert scale < 1 and img.size[0] >= 100 and img.size[1] >= 75
    full, scale = load_rgb_draft(paths[0], (500, 375))
    assert scale == 1.0 and full.size == load_rgb(paths[0]).size
    g = torch.Generator().manual_seed(0)
    x = DraftTrainTransform(32).load_and_transform(paths[1], g)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    u = Uint8TrainTransform(32)(load_rgb(paths[2]), g)
    assert u.shape == (3, 32, 32) and u.dtype == torch.uint8
