"""Prepared copies of an ImageFolder that make loader workers cheaper (docs/performance.md, section 4).

- Resized (C): every image re-encoded as JPEG (quality 90) with its shorter side `shorter`
  (256: what the eval transform resizes to anyway, and what FFCV-style low-resolution training
  reads); decoding a 256 px JPEG costs a fraction of a full-size one.
- Pre-decoded (D), on top of C: each split's pixels as raw uint8 HWC arrays in one file,
  `predecoded/<split>.u8`, read through a memory map, with `predecoded/<split>.index.npz`
  (offset, height, width, label of each image; the class names): workers skip JPEG decode.

`write_prepared_copy` builds everything in a temporary folder beside `dest`, in parallel over
processes, and renames it into place last, so a failure (an image that does not decode, a full
disk) leaves nothing half-written. The marker file `tokensweep-data.json` says what the copy is;
the loader reads it (`read_prepared_form`) to choose the pre-decoded reader, and the trial
reports it (metric `data_form`), since a resized copy changes what RandomResizedCrop sees.
"""

import json
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
from PIL import Image

from vocab.atomic import atomic_dir
from trials.data.describe import MARKER, prepared_form_name
from trials.data.imagefolder import _DECODE_ERRORS, load_rgb
from trials.data.listing import SPLITS, SplitLister, is_image_file, say_once
from trials.data.seeded import SeededDataset
from trials.data.transforms import resize_shorter
from trials.errors import ConfigError, require

PIXELS_DIR = "predecoded"
JPEG_QUALITY = 90
_CHUNK = 32  # images per task sent to a process: amortises the inter-process round trip


@dataclass(frozen=True)
class PreparedForm:
    """What a prepared copy holds (the marker file's content)."""

    source: str
    shorter_side: int
    predecoded: bool
    images: dict  # split -> image count

    def describe(self) -> str:
        """The trial's `data_form` metric, e.g. 'resized_256' or 'resized_256_predecoded'."""
        return prepared_form_name(self.shorter_side, self.predecoded)


def read_prepared_form(root: str | Path) -> PreparedForm | None:
    """The marker of a prepared copy at root; None for an ordinary ImageFolder."""
    path = Path(root) / MARKER
    try:
        if not path.is_file():
            return None
        text = path.read_text()
    except PermissionError:
        raise ConfigError(f"cannot read {root}: permission denied") from None
    try:
        return PreparedForm(**json.loads(text))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path} is not a tokensweep data marker ({type(err).__name__}); rebuild the copy") from None


def data_form(root: str | Path) -> str:
    form = read_prepared_form(root)
    return "original" if form is None else form.describe()


# --- building ---


@dataclass(frozen=True)
class CopyJob:
    """One split's images: source files, their labels, and where their copies go (relative to dest)."""

    split: str
    sources: list[str]
    labels: list[int]
    targets: list[str]


def plan_split(source: Path, split: str, classes: list[str]) -> CopyJob:
    """Every image of source/split/<class> for `classes` (labels in that order), and its copy's path."""
    sources, labels, targets = [], [], []
    # a val split may lack a class; check_source has vetted what must exist
    present = [(label, name) for label, name in enumerate(classes) if (source / split / name).is_dir()]
    lister = SplitLister(source / split)  # each real image once, folder loops not followed
    listed = lister.list_classes([source / split / name for _, name in present], is_image_file)
    for (label, name), paths in zip(present, listed):
        class_dir = source / split / name
        for path in paths:
            sources.append(path)
            labels.append(label)
            targets.append(str(Path(split) / name / _jpeg_name(Path(path).relative_to(class_dir))))
    require(bool(sources), f"{source / split} holds no images of the {len(classes)} classes")
    say_once(lister.note())
    return CopyJob(split, sources, labels, targets)


def _jpeg_name(relative: Path) -> Path:
    """Keep a JPEG's name; another format gets '.jpg' appended (a.png -> a.png.jpg: no collisions)."""
    return relative if relative.suffix.lower() in (".jpg", ".jpeg") else relative.with_name(relative.name + ".jpg")


def resize_one(source: str, target: str, shorter: int) -> tuple[int, int]:
    """Decode source, resize its shorter side to `shorter`, save as JPEG at target; (height, width)."""
    try:
        img = resize_shorter(load_rgb(source), shorter)
    except _DECODE_ERRORS as err:
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        raise ConfigError(f"cannot read image {source} ({reason}); delete or replace it, then run again") from None
    os.makedirs(os.path.dirname(target), exist_ok=True)
    img.save(target, quality=JPEG_QUALITY)
    return img.size[1], img.size[0]


def decode_into(pixels_path: str, offset: int, jpeg_path: str) -> None:
    """Decode one resized copy into its slot of the split's pixel file."""
    pixels = np.asarray(load_rgb(jpeg_path), dtype=np.uint8)
    out = np.memmap(pixels_path, dtype=np.uint8, mode="r+", offset=offset, shape=pixels.shape)
    out[:] = pixels
    out.flush()


class _Inline(Executor):
    """processes=1: run in this process (no pool to start; simpler tracebacks)."""

    def map(self, fn, *iterables, **_):
        return map(fn, *iterables)


def _pool(processes: int) -> Executor:
    return _Inline() if processes == 1 else ProcessPoolExecutor(max_workers=processes)


def write_prepared_copy(
    source: str | Path,
    dest: str | Path,
    classes: list[str],
    shorter: int,
    predecode: bool = False,
    processes: int | None = None,
) -> Path:
    """Resized (and optionally pre-decoded) copy of source/{train,val}/<class> for `classes` at dest.

    Idempotent: a dest already built from the same source with the same options is left as is.
    """
    require(isinstance(shorter, int) and 16 <= shorter <= 4096, f"--resize must be 16 to 4096 pixels, got {shorter!r}")
    processes = (os.cpu_count() or 1) if processes is None else processes
    require(isinstance(processes, int) and processes >= 1, f"--processes must be >= 1, got {processes!r}")
    source, dest = Path(source).expanduser().resolve(), Path(dest).expanduser().absolute()
    if _is_built(dest, source, shorter, predecode):
        return dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(
            f"{dest} already exists and is not a copy of {source} resized to {shorter}"
            f"{' and pre-decoded' if predecode else ''}; remove it or choose another --dest"
        )
    jobs = [plan_split(source, split, classes) for split in SPLITS]
    with atomic_dir(dest) as tmp:
        _write_splits(jobs, tmp, classes, shorter, predecode, processes)
        form = PreparedForm(str(source), shorter, predecode, {job.split: len(job.sources) for job in jobs})
        (tmp / MARKER).write_text(json.dumps(form.__dict__, indent=1) + "\n")
    return dest


def _write_splits(jobs: list[CopyJob], tmp: Path, classes: list[str], shorter: int, predecode: bool, processes: int):
    pool = _pool(processes)
    try:
        for job in jobs:
            shapes = _write_resized(pool, job, tmp, shorter)
            if predecode:
                _write_pixels(pool, job, tmp, shapes, classes)
    finally:
        # After a bad image: drop the queued tasks (not the other 100k images), and wait for the
        # running ones, so that none writes into tmp after the caller has removed it.
        pool.shutdown(wait=True, cancel_futures=True)


def _is_built(dest: Path, source: Path, shorter: int, predecode: bool) -> bool:
    if not (dest / MARKER).is_file():
        return False
    form = read_prepared_form(dest)
    return (form.source, form.shorter_side, form.predecoded) == (str(source), shorter, predecode)


def _write_resized(pool: Executor, job: CopyJob, tmp: Path, shorter: int) -> np.ndarray:
    """The split's JPEG copies; returns their (height, width), one row per image."""
    targets = [str(tmp / t) for t in job.targets]
    shapes = list(pool.map(resize_one, job.sources, targets, repeat(shorter), chunksize=_CHUNK))
    return np.array(shapes, dtype=np.int64).reshape(-1, 2)


def _write_pixels(pool: Executor, job: CopyJob, tmp: Path, shapes: np.ndarray, classes: list[str]) -> None:
    """predecoded/<split>.u8: the copies' pixels back to back; predecoded/<split>.index.npz: where each is."""
    sizes = shapes[:, 0] * shapes[:, 1] * 3
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    (tmp / PIXELS_DIR).mkdir(exist_ok=True)
    pixels_path = tmp / PIXELS_DIR / f"{job.split}.u8"
    with open(pixels_path, "wb") as f:
        f.truncate(int(sizes.sum()))  # sized up front so that processes can fill their slots
    jpegs = [str(tmp / t) for t in job.targets]
    list(pool.map(decode_into, repeat(str(pixels_path)), offsets.tolist(), jpegs, chunksize=_CHUNK))
    np.savez(
        tmp / PIXELS_DIR / f"{job.split}.index.npz",
        offsets=offsets,
        shapes=shapes,
        labels=np.array(job.labels, dtype=np.int64),
        classes=np.array(classes),
        files=np.array(job.targets),
    )


# --- reading ---


class PredecodedImages(SeededDataset):
    """ImageFolder's interface (classes, samples, targets, reseed, (tensor, label) items) over a
    split's pre-decoded pixels: `transform(img, generator)` gets a PIL image without a JPEG decode.

    The pixel file is memory-mapped on first use in each process (a DataLoader worker maps its own;
    the mapping is never pickled), so the page cache, not each worker, holds the data.
    """

    def __init__(self, root: str | Path, split: str, transform, classes: list[str] | None = None, seed: int = 0):
        super().__init__(seed)
        self.root = Path(root)
        self.pixels_path = self.root / PIXELS_DIR / f"{split}.u8"
        index_path = self.root / PIXELS_DIR / f"{split}.index.npz"
        require(index_path.is_file(), f"{index_path} is missing; rebuild the copy with --predecode")
        with np.load(index_path) as index:
            self.offsets, self.shapes = index["offsets"], index["shapes"]
            self.classes = index["classes"].tolist()
            labels, files = index["labels"].tolist(), index["files"].tolist()
        if classes is not None and list(classes) != self.classes:
            raise ConfigError(f"{index_path} was built with other classes than the train split's")
        self.samples = [(str(self.root / f), label) for f, label in zip(files, labels)]
        self.targets = labels
        self.transform = transform
        self._pixels: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None}

    def pixels(self, index: int) -> np.ndarray:
        """Image `index` as a uint8 (H, W, 3) view of the memory map."""
        if self._pixels is None:
            self._pixels = np.memmap(self.pixels_path, dtype=np.uint8, mode="r")
        height, width = self.shapes[index]
        start = int(self.offsets[index])
        return self._pixels[start : start + height * width * 3].reshape(height, width, 3)

    def __getitem__(self, index: int):
        img = Image.fromarray(self.pixels(index))
        return self.transform(img, self.rng), self.targets[index]
