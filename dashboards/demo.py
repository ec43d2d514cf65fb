"""Synthetic example runs (plausible H100 numbers, NOT measurements) for the example screenshot,
docs and tests.

    python -m dashboards.demo OUT_DIR [--optuna]
"""

import argparse
import random
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from dashboards.runs import EXPERIMENT_METADATA_KEY, RUNS_SCHEMA

DEMO_EXPERIMENT = "example-sweep (synthetic example data)"
DEVICE = "NVIDIA H100 80GB HBM3"
# Clustering a bigger map costs more: fewer conv modules before it -> slower (paper Table 7's idea).
SUPERTOKEN_SPEED = {0: 900.0, 2: 1900.0, 4: 2700.0, 6: 3150.0}
SUPERTOKEN_TOP1 = {0: 49.0, 2: 80.5, 4: 82.0, 6: 83.2}


def _run(rng: random.Random, index: int, name: str, embedding: str, **values) -> dict:
    start = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc) + timedelta(minutes=47 * index)
    row = {
        "run_id": f"{index:02d}{rng.getrandbits(120):030x}",
        "run_name": name,
        "trial_id": f"trial_{index:04d}",
        "status": "FINISHED",
        "start_time": start,
        "end_time": start + timedelta(minutes=45),
        "parent_run_id": "f" * 32,
        "model": f"vit_s_{embedding}",
        "embedding": embedding,
        "img_size": 224,
        "epochs": 300,
        "batch_size": 128,
        "lr": 1e-3,
        "seed": 0,
        "dataset": "imagenet100",
        "device": DEVICE,
        "precision": "bf16",
        "torch_version": "2.13.0+cu128",
        "gpu_shared": False,
    }
    row.update(values)
    return row


def demo_rows(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    noise = lambda scale: rng.uniform(-scale, scale)  # noqa: E731
    rows = []

    def add(name: str, embedding: str, **values) -> None:
        rows.append(_run(rng, len(rows), name, embedding, **values))

    for s in (0, 1):
        add(f"patch-s{s}", "patch", seed=s, top1=78.4 + noise(0.3), top5=94.1 + noise(0.2), params=18.1e6,
            embed_params=0.30e6, flops=4.25e9, images_per_sec=4150 + noise(40), train_images_per_sec=1380 + noise(20),
            peak_mem_mb=9800.0)
        add(f"conv-s{s}", "conv", seed=s, top1=81.2 + noise(0.3), top5=95.3 + noise(0.2), params=18.9e6,
            embed_params=1.02e6, flops=4.64e9, images_per_sec=3470 + noise(40), train_images_per_sec=1150 + noise(20),
            peak_mem_mb=11200.0)
    for depth in (0, 2, 4, 6):
        for iters in (1, 2, 3):
            add(f"supertoken-d{depth}-i{iters}", "supertoken", conv_depth=depth, extra_conv=False,
                cluster_iters=iters, channels="16,32,32,64,64,64",
                mask_border=False, top1=SUPERTOKEN_TOP1[depth] - 0.25 * (3 - iters) + noise(0.2),
                top5=95.0 + noise(0.5), params=17.9e6, embed_params=0.13e6, flops=4.3e9 + depth * 0.02e9,
                images_per_sec=SUPERTOKEN_SPEED[depth] * (1 - 0.04 * iters) + noise(30),
                train_images_per_sec=1000 + noise(40), peak_mem_mb=10500.0)
    supertoken = dict(conv_depth=6, extra_conv=False, channels="16,32,32,64,64,64", mask_border=False)
    add("supertoken-d6x-i3", "supertoken", **{**supertoken, "extra_conv": True}, cluster_iters=3, top1=81.6,
        top5=95.1, params=17.9e6, embed_params=0.17e6, flops=4.4e9, images_per_sec=3010.0, peak_mem_mb=10600.0)
    add("supertoken-d6-i4", "supertoken", **supertoken, cluster_iters=4, status="FAILED", end_time=None,
        failure_reason="CUDA out of memory at batch 128 (epoch 3)")
    add("supertoken-d6-i3-s1", "supertoken", **supertoken, cluster_iters=3, seed=1, status="RUNNING",
        end_time=None, top1=71.3, top5=90.2, params=17.9e6, embed_params=0.13e6, flops=4.42e9)
    add("supertoken-d6-i3-mb", "supertoken", **{**supertoken, "mask_border": True}, cluster_iters=3, top1=83.4,
        top5=96.0, params=17.9e6, embed_params=0.13e6, flops=4.42e9)  # throughput not measured
    return rows


def demo_runs(seed: int = 0, optuna: bool = False) -> pa.Table:
    """The example runs as a table with the export's schema (optuna: tagged as an Optuna search)."""
    rows = demo_rows(seed)
    if optuna:
        for number, row in enumerate(rows):
            row.update(sweep_search="optuna", optuna_trial_number=number)
    table = pa.Table.from_pylist(rows, schema=RUNS_SCHEMA)
    return table.replace_schema_metadata({EXPERIMENT_METADATA_KEY: DEMO_EXPERIMENT.encode()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the example dashboard from synthetic runs.")
    parser.add_argument("out_dir")
    parser.add_argument("--optuna", action="store_true", help="tag the runs as an Optuna search")
    args = parser.parse_args(argv)
    from dashboards.build import build_dashboard

    for path in build_dashboard(demo_runs(optuna=args.optuna), args.out_dir).values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
