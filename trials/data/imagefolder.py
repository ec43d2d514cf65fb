"""An ImageFolder data set (`root/<split>/<class>/*.jpg`) decoded with Pillow, no torchvision.

A file that does not decode (truncated, or not an image at all) does not raise inside
`__getitem__`: it comes back as a `BadImage` marker. `collate_images` sets markers aside, and the
loader in the main process then fails with a one-line error naming the file (bad_images="fail")
or skips and counts it ("skip"). Deciding in the main process keeps the message one line even
when the file was read in a DataLoader worker, and lets the count cross worker processes.
"""

import os
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torch.utils.data import default_collate

from trials.data.listing import IMAGE_EXTENSIONS, SPLITS, SplitLister, describe_not_regular, is_image_file, say_once
from trials.data.seeded import SeededDataset
from trials.config import require_full_batch
from trials.errors import ConfigError

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class BadImageError(ConfigError):
    """A file in the data set does not decode as an image (with bad_images='fail')."""


class BadImage(NamedTuple):
    """What a data set returns for a sample whose file does not decode."""

    path: str
    reason: str


def find_classes(split_dir: str | Path) -> list[str]:
    """The sorted class folder names of a split; ConfigError if the split is missing or has none."""
    split_dir = Path(split_dir)
    try:  # (Path.is_dir() would say False for a folder we may not read: say why instead)
        os.stat(split_dir)
        entries = list(os.scandir(split_dir)) if split_dir.is_dir() else None
    except PermissionError:
        raise ConfigError(f"cannot read {split_dir}: permission denied") from None
    except OSError:
        entries = None
    if entries is None:
        raise ConfigError(
            f"{split_dir} does not exist or is not a directory "
            f"(expected an ImageFolder split: {split_dir}/<class>/<image files>)"
        )
    classes = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ConfigError(f"{split_dir} holds no class folders (expected {split_dir}/<class>/<image files>)")
    return classes


class SplitListing(NamedTuple):
    classes: list[str]
    samples: list[tuple[str, int]]  # (path, label)
    note: str | None  # what was left out (folder loops, second paths to one file), one line; None if nothing


def check_imagefolder(root: str | Path, batch_size: int = 1) -> list[str]:
    """A look at an ImageFolder root before a sweep starts: train/ and val/ hold class folders, each
    with at least one image file, val has no class train lacks, train has a full batch_size. Lists
    every file name, as a trial will (a listing is cheap next to decoding), so that a folder loop or a
    doubly linked file is noted (one line on stderr) here too. Returns the train classes. Decoding is
    left to the trials (bad_images)."""
    root = Path(root)
    train = find_classes(root / "train")
    val = find_classes(root / "val")
    unknown = sorted(set(val) - set(train))
    if unknown:
        raise ConfigError(f"{root / 'val'} has {len(unknown)} class folder(s) the train split lacks: {_first_few(unknown)}")
    for split in SPLITS:
        listing = list_split(root / split, train)
        say_once(listing.note)
        if split == "train":
            require_full_batch(len(listing.samples), batch_size)
    if len(train) < 2:
        raise ConfigError(f"{root}/train has {len(train)} class folder; a classifier needs >= 2")
    return train


def scan_split(split_dir: str | Path, classes: list[str] | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """(classes, [(path, label), ...]) of a split (list_split without its note)."""
    listing = list_split(split_dir, classes)
    return listing.classes, listing.samples


def list_split(split_dir: str | Path, classes: list[str] | None = None) -> SplitListing:
    """The classes and (path, label) samples of a split, each real image file once, and what was left out.

    `classes`: the label order to use (the train split's), so that val labels match train; a
    val class folder that train lacks is an error. Every class folder present must hold images.
    """
    split_dir = Path(split_dir)
    present = find_classes(split_dir)
    if classes is None:
        classes = present
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise ConfigError(
            f"{split_dir} has {len(unknown)} class folder(s) the train split lacks: {_first_few(unknown)}"
        )
    index = {name: i for i, name in enumerate(classes)}
    lister = SplitLister(split_dir)
    listed = lister.list_classes([split_dir / name for name in present], is_image_file)
    samples = []
    for name, files, left_out in zip(present, listed, lister.duplicates_by_class):
        if not files:
            raise _no_images_error(split_dir / name, left_out, lister.not_regular_in(split_dir / name))
        samples.extend((path, index[name]) for path in files)
    return SplitListing(list(classes), samples, lister.note())


def _no_images_error(class_dir: Path, duplicates: list[str], not_regular: list[str]) -> ConfigError:
    if duplicates:  # e.g. a class folder that is a link to another class folder
        return ConfigError(
            f"class folder {class_dir} holds only images already listed under another class "
            f"(e.g. {duplicates[0]}); an image can have one label only"
        )
    skipped = ""
    if not_regular:
        skipped = f"; skipped {len(not_regular)} that are not regular files, e.g. {describe_not_regular(not_regular[0])}"
    return ConfigError(
        f"class folder {class_dir} holds no images (looked for regular files named {', '.join(IMAGE_EXTENSIONS)}{skipped})"
    )


def _first_few(names: list[str], n: int = 5) -> str:
    more = f", ... ({len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def load_rgb(path: str) -> Image.Image:
    """Decode fully (so truncation shows here, not later) and convert to RGB."""
    with Image.open(path) as img:
        return img.convert("RGB")


class ImageFolder(SeededDataset):
    """Samples of one split; `transform(img, generator)` turns a PIL image into a tensor, drawing
    from the data set's own generator (`seed`, SeededDataset)."""

    def __init__(self, split_dir: str | Path, transform, classes: list[str] | None = None, seed: int = 0):
        super().__init__(seed)
        self.split_dir = Path(split_dir)
        self.classes, self.samples, self.note = list_split(self.split_dir, classes)
        say_once(self.note)  # a folder loop or a doubly linked file: counted once, and said so
        self.targets = [label for _, label in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            img = load_rgb(path)
        except _DECODE_ERRORS as err:
            return BadImage(path, f"{type(err).__name__}: {err}".splitlines()[0])
        return self.transform(img, self.rng), label


def collate_images(batch: list) -> tuple[torch.Tensor | None, torch.Tensor | None, list[BadImage]]:
    """(images, labels, bad) with BadImage markers set aside; images/labels None if none are good."""
    good = [s for s in batch if not isinstance(s, BadImage)]
    bad = [s for s in batch if isinstance(s, BadImage)]
    if not good:
        return None, None, bad
    x, y = default_collate(good)
    return x, y, bad


def bad_image_error(bad: BadImage) -> BadImageError:
    return BadImageError(
        f"cannot read image {bad.path} ({bad.reason}); "
        "delete or replace it, or set bad_images='skip' to skip such files"
    )
