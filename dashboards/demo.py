"""Synthetic example runs (plausible H100 numbers, NOT measurements) for the example screenshot,
docs and tests: three seeds per configuration, so the chart shows means with intervals.

    python -m dashboards.demo OUT_DIR [--optuna] [--bench]
"""

import argparse
import hashlib
import random
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from dashboards.runs import EXPERIMENT_METADATA_KEY, knob_field, runs_schema

DEMO_EXPERIMENT = "example-sweep (synthetic example data)"
DEVICE = "NVIDIA H100 80GB HBM3"
SEEDS = (0, 1, 2)
# The super-token embedding's knobs: params vocab does not declare (see dashboards.runs).
KNOBS = (knob_field("conv_depth", pa.int64()), knob_field("extra_conv", pa.bool_()),
         knob_field("cluster_iters", pa.int64()), knob_field("channels", pa.string()),
         knob_field("mask_border", pa.bool_()))  # fmt: skip
DEMO_SCHEMA = runs_schema(KNOBS)
# Clustering a bigger map costs more: fewer conv modules before it -> slower (paper Table 7's idea).
SUPERTOKEN_SPEED = {0: 900.0, 2: 1900.0, 4: 2700.0, 6: 3150.0}
SUPERTOKEN_TOP1 = {0: 49.0, 2: 80.5, 4: 82.0, 6: 83.2}
PROPOSED = dict(conv_depth=6, extra_conv=False, cluster_iters=3, channels="16,32,32,64,64,64", mask_border=False)


def _config_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


class _Runs:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.rows: list[dict] = []

    def add(self, config: str, embedding: str, seed: int = 0, **values) -> None:
        index = len(self.rows)
        start = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc) + timedelta(minutes=47 * index)
        row = {
            "run_id": f"{index:02d}{self.rng.getrandbits(120):030x}",
            "run_name": f"{config}-s{seed}",
            "trial_id": f"trial_{index:04d}",
            "status": "FINISHED",
            "start_time": start,
            "end_time": start + timedelta(minutes=45),
            "parent_run_id": "f" * 32,
            "config_id": _config_id(config),
            "model": f"vit_s_{embedding}",
            "embedding": embedding,
            "backbone": "s",
            "img_size": 224,
            "epochs": 300,
            "batch_size": 128,
            "lr": 1e-3,
            "seed": seed,
            "dataset": "imagenet100",
            "device": DEVICE,
            "precision": "bf16",
            "torch_version": "2.13.0+cu128",
            "gpu_shared": False,
        }
        row.update(values)
        self.rows.append(row)

    def seeds(self, config: str, embedding: str, top1: float, top1_sd: float, speed: float, **values) -> None:
        """One configuration run with every seed: accuracy spreads over seeds, throughput ~1.5% per measurement."""
        for seed in SEEDS:
            self.add(config, embedding, seed, top1=top1 + self.rng.gauss(0, top1_sd), top5=95.0 + self.rng.gauss(0, 0.3),
                     images_per_sec=speed * (1 + self.rng.gauss(0, 0.015)), **values)  # fmt: skip


def demo_rows(seed: int = 0) -> list[dict]:
    runs = _Runs(seed)
    runs.seeds("patch", "patch", 78.4, 0.3, 4150, params=18_162_916, embed_params=297_600, flops=4.25e9,
               train_images_per_sec=1380.0, peak_mem_mb=9800.0)
    runs.seeds("conv", "conv", 81.2, 0.3, 3470, params=18_886_804, embed_params=1_021_488, flops=4.64e9,
               train_images_per_sec=1150.0, peak_mem_mb=11200.0)
    for depth in (0, 2, 4, 6):
        for iters in (1, 3):
            knobs = {**PROPOSED, "conv_depth": depth, "cluster_iters": iters}
            runs.seeds(f"supertoken-d{depth}-i{iters}", "supertoken", SUPERTOKEN_TOP1[depth] - 0.25 * (3 - iters), 0.5,
                       SUPERTOKEN_SPEED[depth] * (1 - 0.04 * iters), params=17_997_236, embed_params=131_920,
                       flops=4.3e9 + depth * 0.02e9, train_images_per_sec=1000.0, peak_mem_mb=10500.0, **knobs)
    # One seed, below supertoken-d6-i1 on both means: no interval of a difference, so within noise of the front
    runs.add("supertoken-d6x-i3", "supertoken", **{**PROPOSED, "extra_conv": True}, top1=81.6, top5=95.1,
             params=18_040_000, embed_params=170_000, flops=4.4e9, images_per_sec=2960.0, peak_mem_mb=10600.0)
    runs.add("supertoken-d6-i4", "supertoken", **{**PROPOSED, "cluster_iters": 4}, status="FAILED", end_time=None,
             failure_reason="CUDA out of memory at batch 128 (epoch 3)")
    runs.add("supertoken-d6-i3", "supertoken", 3, **PROPOSED, status="RUNNING", end_time=None, top1=71.3, top5=90.2,
             params=17_997_236, embed_params=131_920, flops=4.42e9)
    runs.add("supertoken-d6-i3-mb", "supertoken", **{**PROPOSED, "mask_border": True}, top1=83.4, top5=96.0,
             params=17_997_236, embed_params=131_920, flops=4.42e9)  # throughput not measured
    return runs.rows


def with_bench(rows: list[dict]) -> None:
    """The bench stage's figures: one per architecture (every seed of a configuration shares it)."""
    medians: dict[str, list[float]] = {}
    for row in rows:
        if row.get("images_per_sec") is not None:
            medians.setdefault(row["config_id"], []).append(row["images_per_sec"])
    for row in rows:
        speeds = medians.get(row["config_id"])
        if speeds and row["status"] == "FINISHED":
            median = sorted(speeds)[len(speeds) // 2]
            row.update(bench_images_per_sec=median, bench_images_per_sec_ci_low=median * 0.99,
                       bench_images_per_sec_ci_high=median * 1.01, bench_device=DEVICE, bench_id="bench-1")  # fmt: skip


def demo_runs(seed: int = 0, optuna: bool = False, bench: bool = False) -> pa.Table:
    """The example runs as a table with the export's schema (optuna: tagged as an Optuna search;
    bench: with the bench stage's throughput figures)."""
    rows = demo_rows(seed)
    if bench:
        with_bench(rows)
    if optuna:
        for number, row in enumerate(rows):
            row.update(sweep_search="optuna", optuna_trial_number=number)
    table = pa.Table.from_pylist(rows, schema=DEMO_SCHEMA)
    return table.replace_schema_metadata({EXPERIMENT_METADATA_KEY: DEMO_EXPERIMENT.encode()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the example dashboard from synthetic runs.")
    parser.add_argument("out_dir")
    parser.add_argument("--optuna", action="store_true", help="tag the runs as an Optuna search")
    parser.add_argument("--bench", action="store_true", help="add the bench stage's throughput figures")
    args = parser.parse_args(argv)
    from dashboards.build import build_dashboard

    for path in build_dashboard(demo_runs(optuna=args.optuna, bench=args.bench), args.out_dir).values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
