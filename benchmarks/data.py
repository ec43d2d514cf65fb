"""Target 4: the data pipeline. Images/sec per worker process of the ImageFolder loader (decode +
augment, trials.data) at 224 px, of mixup/cutmix and the device-side normalise + erasing, the
workers needed to feed a GPU, and the cheaper loader paths side by side.

Rows named in the notes are trials' own code paths (B: uint8 from workers, always on; C: the
`--resize 256` copy; D: its `--predecode` pixels); A (draft decode) and the crop-only bound are
prototypes that live only here; "train" is the recipe as workers ran it before B (float32 out,
benchmarks.old_recipe), the baseline of vs_train.

Images: a few hundred generated JPEGs of ImageNet-like size (500x375 and its kin, ~100 KB at
quality 90), written to a temporary ImageFolder. "Per worker" = one process, one torch thread,
as each DataLoader worker runs.
"""

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from benchmarks.common import SectionResult, Settings, Target, env_columns
from benchmarks.old_recipe import old_recipe, random_erasing, to_normalized_tensor
from trials import create_model
from trials.data import EvalTransform, ImageFolder, Mixer, TrainTransform, collate_images
from trials.data.device_augment import DeviceAugment
from trials.data.imagefolder import load_rgb
from trials.data.prepared import PredecodedImages, write_prepared_copy
from trials.data.transforms import random_resized_crop_box, to_uint8_tensor
from trials.measure import flops_per_image, make_train_step, time_steps
from trials.measure.timing import cpu_threads, time_interleaved

IMG = 224
SIZES = ((500, 375), (500, 333), (375, 500), (500, 400))  # ImageNet's most common shapes
CACHE_SHORTER_SIDE = 256
ERASING = 0.25  # the recipe's random erasing probability
# Stated GPU training rates, for when no GPU is at hand.
# NVIDIA's nvSubquadratic benchmarks (nvidia-bionemo.github.io/nvSubquadratic/benchmarks.html): ViT-5-Small
# (22M params, 224 px, batch 256, bf16) model throughput on one H100 SXM, synthetic data, torch.compile
# max-autotune: 8,003 samples/s (eager, optimised: 2,305).
H100_PUBLISHED_VIT_S_TRAIN = 8003.0
H100_BF16_DENSE_FLOPS = 989e12  # NVIDIA H100 SXM datasheet: 1,979 TFLOP/s bf16 with sparsity, half dense
TIMM_RTX3090_VIT_S_TRAIN = 1057.92  # timm results/benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv


# --- test images ---


def synthetic_photo(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Smooth colour regions + mid-frequency texture + sensor-like noise: JPEG sizes like ImageNet's."""
    low = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
    mid = rng.normal(128, 40, (height // 8, width // 8, 3)).clip(0, 255).astype(np.uint8)
    mid = Image.fromarray(mid).resize((width, height), Image.BILINEAR)
    pixels = np.asarray(low, np.float32) + np.asarray(mid, np.float32) - 128 + rng.normal(0, 16, (height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def write_jpegs(root: Path, count: int, classes: int = 4, seed: int = 0, split: str = "train") -> Path:
    """An ImageFolder split root/<split>/<class>/*.jpg of `count` images; returns the split directory."""
    rng = np.random.default_rng(seed)
    split_dir = root / split
    for i in range(count):
        folder = split_dir / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        synthetic_photo(*SIZES[i % len(SIZES)], rng).save(folder / f"img_{i:04d}.jpg", quality=90)
    return split_dir


def write_prepared(root: Path, dest: Path) -> Path:
    """trials' `--resize 256 --predecode` copy of root (one process: the per-core cost of the one-off)."""
    classes = sorted(p.name for p in (root / "train").iterdir())
    return write_prepared_copy(root, dest, classes, CACHE_SHORTER_SIDE, predecode=True, processes=1)


# --- prototypes that trials does not have (A, and the crop-only bound) ---


def load_rgb_draft(path: str, min_size: tuple[int, int]) -> tuple[Image.Image, float]:
    """Decode a JPEG at the smallest DCT scale (1/2, 1/4, 1/8) that keeps it at least min_size.

    Returns the image and the scale it was decoded at (1.0: full size; other formats: always 1.0).
    """
    with Image.open(path) as img:
        full_width = img.size[0]
        if img.format == "JPEG":
            img.draft("RGB", min_size)  # PIL picks the largest reduction that stays >= min_size
        img = img.convert("RGB")
    return img, img.size[0] / full_width


class DraftTrainTransform(TrainTransform):
    """Prototype A: the crop box drawn from the JPEG header, then a decode only as fine as the box
    needs to still be >= img_size after the crop (PIL draft mode); ends like the old recipe (float32)."""

    def load_and_transform(self, path: str, g: torch.Generator | None = None) -> torch.Tensor:
        with Image.open(path) as header:
            width, height = header.size
        box = random_resized_crop_box(width, height, g)
        box_w, box_h = box[2] - box[0], box[3] - box[1]
        need = max(self.img_size / box_w, self.img_size / box_h)  # the scale the crop may shrink to
        img, scale = load_rgb_draft(path, (math.ceil(width * need), math.ceil(height * need)))
        box = tuple(round(v * scale) for v in box)
        img = img.resize((self.img_size, self.img_size), Image.BICUBIC, box=box)
        return self.finish(img, g)

    def finish(self, img: Image.Image, g) -> torch.Tensor:
        """The rest of the old recipe after the crop: flip, RandAugment, tensor, normalise, erasing."""
        if torch.rand((), generator=g).item() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if self.randaugment is not None:
            img = self.randaugment(img, g)
        return random_erasing(to_normalized_tensor(img), ERASING, g)


class Uint8TrainTransform(TrainTransform):
    """trials' TrainTransform (uint8 out); crop_only=True: the bound, crop + resize only (flip and
    RandAugment as GPU batch ops too), the least a worker has to do with JPEG files."""

    def __init__(self, img_size: int, crop_only: bool = False):
        super().__init__(img_size)
        self.crop_only = crop_only

    def __call__(self, img: Image.Image, g: torch.Generator | None = None) -> torch.Tensor:
        if not self.crop_only:
            return super().__call__(img, g)
        box = random_resized_crop_box(*img.size, g)
        return to_uint8_tensor(img.resize((self.img_size, self.img_size), Image.BICUBIC, box=box))


# --- measurements ---


def per_worker_rates(fns: dict, items: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """name -> (images/sec, spread) of fns[name] over items[name], one torch thread, as a DataLoader
    worker runs. One timed step = one pass over the items; the pipelines alternate pass by pass."""
    passes = {name: (lambda fn=fn, its=items[name]: [fn(item) for item in its]) for name, fn in fns.items()}
    with cpu_threads(1):
        for name, fn in fns.items():
            for item in items[name][:4]:
                fn(item)  # first-call costs (imports, lookup tables) out of the figure
        timings = time_interleaved(passes, torch.device("cpu"), warmup=0, steps=repeats)
    return {name: (len(items[name]) / t.median_s, t.spread) for name, t in timings.items()}


def pipelines(root: Path, prepared: Path) -> dict:
    """name -> (description, fn(item), items): `fn` is applied to every item of `items` per pass.

    Rows on trials' real paths index trials' own datasets (ImageFolder / PredecodedImages with
    TrainTransform / EvalTransform), exactly what a DataLoader worker calls."""
    g = torch.Generator().manual_seed(0)
    split, cached = root / "train", prepared / "train"
    paths = sorted(str(p) for p in split.rglob("*.jpg"))
    cached_paths = sorted(str(p) for p in cached.rglob("*.jpg"))
    recipe = old_recipe(TrainTransform(IMG), ERASING)
    plain = old_recipe(TrainTransform(IMG, randaugment=False), 0.0)
    draft = DraftTrainTransform(IMG)
    crop_only = Uint8TrainTransform(IMG, crop_only=True)
    real_train = ImageFolder(split, TrainTransform(IMG))
    real_eval = ImageFolder(split, EvalTransform(IMG))
    real_cached = ImageFolder(cached, TrainTransform(IMG))
    real_predecoded = PredecodedImages(prepared, "train", TrainTransform(IMG))
    every = range(len(paths))
    return {
        "decode": ("JPEG decode + RGB only", load_rgb, paths),
        "train": ("old recipe (the baseline): decode, RandomResizedCrop, flip, RandAugment m9, normalise, "
                  "erasing 0.25, all in the worker (float32 out)", lambda p: recipe(load_rgb(p), g), paths),
        "train_no_randaugment": ("old recipe without RandAugment and erasing", lambda p: plain(load_rgb(p), g), paths),
        "eval": ("trials eval path: decode, resize 256, centre crop 224 (uint8 out)", real_eval.__getitem__, every),
        "train_draft": ("prototype A: crop box from the JPEG header, decode at reduced DCT scale "
                        "(PIL draft) when the crop allows (float32 out)", lambda p: draft.load_and_transform(p, g), paths),
        "train_uint8": ("trials train path (B, always on): the recipe with uint8 out; normalise + erasing "
                        "on the device batch", real_train.__getitem__, every),
        "train_cached": (f"old recipe on trials' --resize {CACHE_SHORTER_SIDE} copy (C alone)",
                         lambda p: recipe(load_rgb(p), g), cached_paths),
        "train_cached_uint8": (f"trials train path on the --resize {CACHE_SHORTER_SIDE} copy (B + C)",
                               real_cached.__getitem__, every),
        "train_predecoded_uint8": (f"trials train path on the --resize {CACHE_SHORTER_SIDE} --predecode copy "
                                   "(B + D: memory-mapped uint8 pixels, no JPEG decode)",
                                   real_predecoded.__getitem__, every),
        "crop_only_uint8": ("bound: decode, crop and resize only; flip, RandAugment, erasing as GPU batch ops",
                            lambda p: crop_only(load_rgb(p), g), paths),
    }  # fmt: skip


def dataloader_rate(dataset, workers: int, batch: int) -> float:
    """End-to-end images/sec of a DataLoader over a trials dataset (workers started before timing)."""
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate_images,
                        persistent_workers=True, shuffle=True)  # fmt: skip
    it = iter(loader)
    next(it)  # workers up, first batch out
    start, seen = time.perf_counter(), 0
    for x, _, _ in it:
        seen += x.shape[0]
    elapsed = time.perf_counter() - start
    del it, loader
    return seen / elapsed


def batch_rows(settings: Settings, batch: int) -> list[dict]:
    """Images/sec of the batch steps on the training device, after the loader: trials' normalise +
    erasing (DeviceAugment, on every batch), mixup and cutmix (trials.data.Mixer)."""
    x8 = torch.randint(0, 256, (batch, 3, IMG, IMG), dtype=torch.uint8, device=settings.device)
    x = torch.randn(batch, 3, IMG, IMG, device=settings.device)
    y = torch.randint(0, 100, (batch,), device=settings.device)
    device_augment = DeviceAugment(ERASING)
    steps = {
        "device_augment": ("trials.data.DeviceAugment: uint8 -> normalised float32 + random erasing 0.25",
                           lambda: device_augment(x8)),
        "mixup": ("trials.data.Mixer, mixup only", lambda m=Mixer(100, cutmix_alpha=0.0): m(x, y)),
        "cutmix": ("trials.data.Mixer, cutmix only", lambda m=Mixer(100, mixup_alpha=0.0): m(x, y)),
    }  # fmt: skip
    rows = []
    for name, (what, step) in steps.items():
        with cpu_threads(settings.threads if settings.device.type == "cpu" else None):
            timing = time_steps(step, settings.device, warmup=2, steps=settings.steps)
        rows.append({"pipeline": name, "description": f"{what}, batch {batch}, on {settings.device.type}",
                     "images_per_sec": timing.per_sec(batch), "spread": timing.spread,
                     "per": f"batch on {settings.device.type}"})  # fmt: skip
    return rows


def gpu_rates(settings: Settings) -> dict[str, tuple[float, str]]:
    """Training images/sec a loader must feed: measured here on CUDA, else stated figures."""
    model = create_model("vit_s_supertoken")
    if settings.on_cuda:
        model = model.to(settings.device)
        step = make_train_step(model, IMG, 128, settings.device, "bf16")
        timing = time_steps(step, settings.device, warmup=3, steps=10)
        return {"measured": (timing.per_sec(128), f"vit_s_supertoken bf16 training measured on {settings.device}")}
    fwd = flops_per_image(model, IMG)
    h100 = 0.40 * H100_BF16_DENSE_FLOPS / (3 * fwd)
    return {
        "h100_published": (H100_PUBLISHED_VIT_S_TRAIN, "published: ViT-5-Small bf16 training, one H100 SXM, "
                           "torch.compile (NVIDIA nvSubquadratic benchmarks)"),
        "h100_at_40pct_mfu": (h100, "H100 SXM at the issue's 40% MFU target: 0.4 x 989 TFLOP/s dense bf16 "
                              f"/ (3 x {fwd / 1e9:.2f} GFLOP) per vit_s_supertoken training image"),
        "timm_rtx3090": (TIMM_RTX3090_VIT_S_TRAIN, "timm's published vit_small_patch16_224 AMP training "
                         "rate on an RTX 3090 (benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv)"),
    }  # fmt: skip


def run(settings: Settings) -> SectionResult:
    count, repeats = (16, 1) if settings.quick else (160, 5)
    rates = gpu_rates(settings)
    result = SectionResult("data", md_columns=("pipeline", "images_per_sec", "spread", "vs_train",
                                               *(f"workers_{name}" for name in rates), "description"))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tokensweep-bench-") as tmp:
        root = Path(tmp) / "src"
        split = write_jpegs(root, count)
        write_jpegs(root, 4, split="val")
        start = time.perf_counter()
        prepared = write_prepared(root, Path(tmp) / "prepared")
        prepare_s = time.perf_counter() - start
        sizes = {s: [p.stat().st_size for p in (d / "train").rglob("*.jpg")] for s, d in (("src", root), ("copy", prepared))}
        mean_kb = {s: sum(v) / len(v) / 1024 for s, v in sizes.items()}
        pixels_kb = (prepared / "predecoded" / "train.u8").stat().st_size / count / 1024
        paths_of = pipelines(root, prepared)
        rates_of = per_worker_rates({name: fn for name, (_, fn, _) in paths_of.items()},
                                    {name: items for name, (_, _, items) in paths_of.items()}, repeats)  # fmt: skip
        for name, (description, _, _) in paths_of.items():
            rate, spread = rates_of[name]
            result.rows.append({"pipeline": name, "description": description, "images_per_sec": rate,
                                "spread": spread, "per": "worker process (1 thread)"})  # fmt: skip
            print(f"  {name}: {rate:.0f} img/s per worker", flush=True)
        workers = 2 if not settings.quick else 1
        batch = 32 if not settings.quick else 4
        for name, dataset in ((f"dataloader_{workers}_workers", ImageFolder(split, TrainTransform(IMG))),
                              (f"dataloader_predecoded_{workers}_workers",
                               PredecodedImages(prepared, "train", TrainTransform(IMG)))):  # fmt: skip
            what = "original JPEGs" if isinstance(dataset, ImageFolder) else "the --predecode copy"
            result.rows.append({"pipeline": name, "images_per_sec": dataloader_rate(dataset, workers, batch),
                                "description": f"DataLoader over trials' train path on {what}, {workers} worker "
                                f"processes, this {settings.threads}-core machine (shared)", "per": "loader"})  # fmt: skip
    result.rows += batch_rows(settings, batch=8 if settings.quick else 128)
    base = next(r for r in result.rows if r["pipeline"] == "train")["images_per_sec"]
    for row in result.rows:
        per_worker = row.get("per") == "worker process (1 thread)"
        row["vs_train"] = row["images_per_sec"] / base if per_worker else None
        for name, (rate, _) in rates.items():  # worker processes to feed each GPU rate
            row[f"workers_{name}"] = math.ceil(rate / row["images_per_sec"]) if per_worker else None
        row.update(env_columns(settings, "fp32", 1))
    for name, (rate, source) in rates.items():
        result.rows.append({"pipeline": f"gpu_rate_{name}", "images_per_sec": rate, "description": source,
                            "per": "GPU"})  # fmt: skip
    result.targets = data_targets(result.rows, rates)
    result.notes = notes(mean_kb, pixels_kb, prepare_s, count, rates)
    return result


TRIALS_PATHS = ("eval", "train_uint8", "train_cached_uint8", "train_predecoded_uint8")


def data_targets(rows: list[dict], rates: dict) -> list[Target]:
    """Workers for the first (primary) GPU rate: the old recipe, trials' default path, the cheapest path."""
    name, (rate, _) = next(iter(rates.items()))
    key = f"workers_{name}"
    row = {r["pipeline"]: r for r in rows}
    best = min((r for r in rows if r.get(key) and r["pipeline"].startswith("train")), key=lambda r: r[key])
    note = "a 16-core GPU node (one core feeds the GPU)"
    return [
        Target(f"workers to feed {rate:.0f} img/s ({name}), old recipe path", row["train"][key], 15, "", False, note),
        Target(f"workers to feed {rate:.0f} img/s, trials' default path (train_uint8)", row["train_uint8"][key],
               15, "", False),  # fmt: skip
        Target(f"workers to feed {rate:.0f} img/s, cheapest path ({best['pipeline']})", best[key], 15, "", False),
    ]


def notes(mean_kb: dict, pixels_kb: float, prepare_s: float, count: int, rates: dict) -> list[str]:
    stated = "; ".join(f"workers_{name}: {rate:.0f} img/s, {src}" for name, (rate, src) in rates.items())
    per_image_s = prepare_s / (count + 4)
    return [
        f"{count} generated JPEGs (500x375, 500x333, 375x500, 500x400; mean {mean_kb['src']:.0f} KiB at quality 90), "
        "read from the page cache: decode and augmentation cost, not disk speed.",
        "images_per_sec per worker: one process, one torch thread, the pipeline applied to every image; "
        "the pipelines alternate pass by pass (time_interleaved), median of passes. vs_train: relative to "
        "the old recipe path (train), as workers ran it before trials moved normalise + erasing to the device.",
        f"trials' real code paths: {', '.join(TRIALS_PATHS)} and the dataloader_* rows (trials' ImageFolder / "
        "PredecodedImages datasets with TrainTransform / EvalTransform, as a DataLoader worker calls them), "
        "device_augment, mixup, cutmix; the --resize 256 --predecode copy is written by trials.data.prepared. "
        "train, train_no_randaugment, train_cached: the old float32 recipe (benchmarks.old_recipe, on trials' "
        "transforms); "
        "train_draft (A) and crop_only_uint8: prototypes in this file only.",
        f"workers_*: worker processes needed to feed a GPU training rate ({stated}).",
        f"The --resize {CACHE_SHORTER_SIDE} --predecode copy took {per_image_s * 1e3:.1f} ms per image on one process "
        f"(resize + JPEG + decode again; ~{per_image_s * 126_000 / 60 / 16:.0f} min on 16 cores for ImageNet-100's "
        f"126k train images); its JPEGs average {mean_kb['copy']:.0f} KiB, its pixels {pixels_kb:.0f} KiB per image "
        f"(x 126k: ~{mean_kb['copy'] * 126_000 / 2**20:.1f} GiB and ~{pixels_kb * 126_000 / 2**20:.0f} GiB).",
        "Normalise + erasing (device_augment), mixup and cutmix run on the batch on the training device, after "
        "the loader: they cost no worker time (on a GPU, a few passes over the batch in memory).",
    ]
