"""Target 4: the data pipeline. Images/sec per worker process of the ImageFolder loader (decode +
augment, trials.data) at 224 px, of mixup/cutmix, the workers needed to feed a GPU, and cheaper
decode paths measured side by side (candidates for trials.data, which this section only proposes).

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
from trials import create_model
from trials.data import EvalTransform, ImageFolder, Mixer, TrainTransform, collate_images
from trials.data.imagefolder import load_rgb
from trials.data.transforms import (
    _uniform,
    random_erasing,
    random_resized_crop_box,
    resize_shorter,
    to_normalized_tensor,
)
from trials.measure import flops_per_image, make_train_step, time_steps
from trials.measure.timing import cpu_threads, time_interleaved

IMG = 224
SIZES = ((500, 375), (500, 333), (375, 500), (500, 400))  # ImageNet's most common shapes
CACHE_SHORTER_SIDE = 256
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


def write_jpegs(root: Path, count: int, classes: int = 4, seed: int = 0) -> Path:
    """An ImageFolder split root/train/<class>/*.jpg of `count` images; returns the split directory."""
    rng = np.random.default_rng(seed)
    split = root / "train"
    for i in range(count):
        folder = split / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        synthetic_photo(*SIZES[i % len(SIZES)], rng).save(folder / f"img_{i:04d}.jpg", quality=90)
    return split


def write_resized_cache(split: Path, dest: Path, shorter: int = CACHE_SHORTER_SIDE) -> Path:
    """The same split with every image resized so its shorter side is `shorter` (quality 90)."""
    for path in split.rglob("*.jpg"):
        out = dest / path.relative_to(split)
        out.parent.mkdir(parents=True, exist_ok=True)
        resize_shorter(load_rgb(str(path)), shorter).save(out, quality=90)
    return dest


# --- cheaper loader paths (proposals for trials.data) ---


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
    """TrainTransform that draws the crop box from the JPEG header, then decodes only as finely as
    the box needs to still be >= img_size after the crop (PIL draft mode)."""

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
        """The rest of TrainTransform after the crop: flip, RandAugment, tensor, normalise, erasing."""
        if _uniform(g) < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if self.randaugment is not None:
            img = self.randaugment(img, g)
        return random_erasing(to_normalized_tensor(img), self.erasing, g)


def to_tensor_uint8(img: Image.Image) -> torch.Tensor:
    """uint8 CHW tensor, no normalisation: a quarter of the bytes to send from a worker."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


class Uint8TrainTransform(TrainTransform):
    """TrainTransform up to the uint8 tensor: normalisation and random erasing move to the GPU batch.

    crop_only=True stops after the crop and resize (flip and RandAugment on the GPU too): the least
    a worker has to do with JPEG files.
    """

    def __init__(self, img_size: int, crop_only: bool = False):
        super().__init__(img_size)
        self.crop_only = crop_only

    def __call__(self, img: Image.Image, g: torch.Generator | None = None) -> torch.Tensor:
        box = random_resized_crop_box(*img.size, g)
        img = img.resize((self.img_size, self.img_size), Image.BICUBIC, box=box)
        if not self.crop_only:
            if _uniform(g) < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            img = self.randaugment(img, g)
        return to_tensor_uint8(img)


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


def pipelines(split: Path, cached: Path, decoded: dict[str, np.ndarray]) -> dict:
    """name -> (description, fn(path) -> anything, split it reads). `decoded`: cached path -> uint8 pixels."""
    g = torch.Generator().manual_seed(0)
    train = TrainTransform(IMG)
    plain = TrainTransform(IMG, randaugment=False, random_erasing=0.0)
    evaluate = EvalTransform(IMG)
    draft = DraftTrainTransform(IMG)
    uint8 = Uint8TrainTransform(IMG)
    crop_only = Uint8TrainTransform(IMG, crop_only=True)
    return {
        "decode": ("JPEG decode + RGB only", lambda p: load_rgb(p), split),
        "train": ("trials.data train path: decode, RandomResizedCrop, flip, RandAugment m9, "
                  "normalise, erasing 0.25 (the recipe)", lambda p: train(load_rgb(p), g), split),
        "train_no_randaugment": ("train path without RandAugment and erasing", lambda p: plain(load_rgb(p), g), split),
        "eval": ("trials.data eval path: decode, resize 256, centre crop 224, normalise",
                 lambda p: evaluate(load_rgb(p)), split),
        "train_draft": ("proposal A: crop box from the JPEG header, decode at reduced DCT scale "
                        "(PIL draft) when the crop allows", lambda p: draft.load_and_transform(p, g), split),
        "train_uint8": ("proposal B: worker returns uint8; normalise + erasing on the GPU batch",
                        lambda p: uint8(load_rgb(p), g), split),
        "train_cached": (f"proposal C: same recipe on a pre-resized copy (shorter side {CACHE_SHORTER_SIDE})",
                         lambda p: train(load_rgb(p), g), cached),
        "train_cached_uint8": ("proposals B + C together", lambda p: uint8(load_rgb(p), g), cached),
        "train_predecoded_uint8": ("proposal D: B on pre-decoded uint8 pixels of the resized copy "
                                   "(a memory-mapped array file; no JPEG decode at all)",
                                   lambda p: uint8(Image.fromarray(decoded[p]), g), cached),
        "crop_only_uint8": ("bound: decode, crop and resize only; flip, RandAugment, erasing as GPU batch ops",
                            lambda p: crop_only(load_rgb(p), g), split),
    }  # fmt: skip


def dataloader_rate(split: Path, workers: int, batch: int) -> float:
    """End-to-end images/sec of a DataLoader over the split (workers started before timing)."""
    dataset = ImageFolder(split, TrainTransform(IMG))
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


def mixer_rows(settings: Settings, batch: int) -> list[dict]:
    """Images/sec of mixup and of cutmix (trials.data.Mixer) on a float batch on the training device."""
    x = torch.randn(batch, 3, IMG, IMG, device=settings.device)
    y = torch.randint(0, 100, (batch,), device=settings.device)
    rows = []
    for name, kwargs in (("mixup", {"cutmix_alpha": 0.0}), ("cutmix", {"mixup_alpha": 0.0})):
        mixer = Mixer(100, **kwargs)
        with cpu_threads(settings.threads if settings.device.type == "cpu" else None):
            timing = time_steps(lambda: mixer(x, y), settings.device, warmup=2, steps=settings.steps)
        rows.append({"pipeline": name, "description": f"trials.data.Mixer, {name} only, batch {batch}, "
                     f"on {settings.device.type}", "images_per_sec": timing.per_sec(batch), "spread": timing.spread,
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
        split = write_jpegs(Path(tmp), count)
        start = time.perf_counter()
        cached = write_resized_cache(split, Path(tmp) / "cached")
        cache_s = time.perf_counter() - start
        paths = {s: sorted(str(p) for p in s.rglob("*.jpg")) for s in (split, cached)}
        mean_kb = sum(Path(p).stat().st_size for p in paths[split]) / len(paths[split]) / 1024
        decoded = {p: np.asarray(load_rgb(p)) for p in paths[cached]}
        paths_of = pipelines(split, cached, decoded)
        rates_of = per_worker_rates({name: fn for name, (_, fn, _) in paths_of.items()},
                                    {name: paths[source] for name, (_, _, source) in paths_of.items()}, repeats)  # fmt: skip
        for name, (description, _, _) in paths_of.items():
            rate, spread = rates_of[name]
            result.rows.append({"pipeline": name, "description": description, "images_per_sec": rate,
                                "spread": spread, "per": "worker process (1 thread)"})  # fmt: skip
            print(f"  {name}: {rate:.0f} img/s per worker", flush=True)
        workers = 2 if not settings.quick else 1
        loader_rate = dataloader_rate(split, workers, batch=32 if not settings.quick else 4)
        result.rows.append({"pipeline": f"dataloader_{workers}_workers", "images_per_sec": loader_rate,
                            "description": f"DataLoader over the train path, {workers} worker processes, "
                            f"this {settings.threads}-core machine (shared)", "per": "loader"})  # fmt: skip
    result.rows += mixer_rows(settings, batch=8 if settings.quick else 128)
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
    result.notes = notes(mean_kb, cache_s, count, rates)
    return result


def data_targets(rows: list[dict], rates: dict) -> list[Target]:
    """Workers for the first (primary) GPU rate: the recipe path and the cheapest path measured."""
    name, (rate, _) = next(iter(rates.items()))
    key = f"workers_{name}"
    train = next(r for r in rows if r["pipeline"] == "train")
    best = min((r for r in rows if r.get(key) and r["pipeline"].startswith("train")), key=lambda r: r[key])
    note = "the lent H100 machine has 16 cores (one feeds the GPU)"
    return [
        Target(f"workers to feed {rate:.0f} img/s ({name}), recipe path", train[key], 15, "", False, note),
        Target(f"workers to feed {rate:.0f} img/s, cheapest path ({best['pipeline']})", best[key], 15, "", False),
    ]


def notes(mean_kb, cache_s, count, rates) -> list[str]:
    stated = "; ".join(f"workers_{name}: {rate:.0f} img/s, {src}" for name, (rate, src) in rates.items())
    return [
        f"{count} generated JPEGs (500x375, 500x333, 375x500, 500x400; mean {mean_kb:.0f} KiB at quality 90), "
        "read from the page cache: decode and augmentation cost, not disk speed.",
        "images_per_sec per worker: one process, one torch thread, the pipeline applied to every image; "
        "the pipelines alternate pass by pass (time_interleaved), median of passes. vs_train: relative to "
        "the recipe's train path.",
        f"workers_*: worker processes needed to feed a GPU training rate ({stated}).",
        f"The pre-resized copy took {cache_s:.1f} s to write for {count} images (a one-off, ~"
        f"{cache_s / count * 126_000 / 60 / 16:.0f} min on 16 cores for ImageNet-100's 126k).",
        "Mixup/cutmix run on the batch on the training device, after the loader: they cost no worker time.",
    ]
