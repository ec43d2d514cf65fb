"""ImageNet-100 (CMC's 100-class subset) as symlinks into the user's own ImageNet-1k copy, or as a
resized (and optionally pre-decoded) copy of it, which loader workers read several times faster
(trials.data.prepared).

`build_imagenet100(source, dest)` checks everything first (both splits, all 100 classes, val sorted
into class folders), then links (or copies) into a temporary folder beside `dest` and renames it
into place, so an error never leaves a half-built `dest`. Run again on a complete `dest`, it does nothing.
"""

import os
from importlib import resources
from pathlib import Path

from vocab.atomic import atomic_dir
from trials.data.listing import SPLITS, SplitLister, is_image_file
from trials.data.prepared import write_prepared_copy
from trials.errors import ConfigError, require


def imagenet100_wnids() -> list[str]:
    """The 100 WordNet ids, in file order (the same as sorted order)."""
    text = resources.files("trials.data").joinpath("imagenet100.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _first_few(names: list[str], n: int = 5) -> str:
    more = f", ... ({len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def check_source(source: Path, wnids: list[str]) -> None:
    """ConfigError unless source/train/<wnid> and source/val/<wnid> exist for every wnid."""
    for split in SPLITS:
        if not (source / split).is_dir():
            raise ConfigError(
                f"{source / split} does not exist; --source must be an ImageNet-1k folder with "
                "train/<wnid>/ and val/<wnid>/ (e.g. the extracted ILSVRC2012 train and val sets)"
            )
    _check_val_is_sorted(source / "val")
    for split in SPLITS:
        missing = [w for w in wnids if not (source / split / w).is_dir()]
        if missing:
            raise ConfigError(
                f"{source / split} lacks {len(missing)} of the {len(wnids)} ImageNet-100 classes: "
                f"{_first_few(missing)}; is --source a complete ImageNet-1k copy?"
            )


def _check_classes_have_images(source: Path, wnids: list[str]) -> None:
    """Every class folder holds an image the loaders would read: else "100 classes" would be untrue."""
    for split in SPLITS:
        listed = SplitLister(source / split).list_classes([source / split / w for w in wnids], is_image_file)
        empty = [w for w, files in zip(wnids, listed) if not files]
        if empty:
            raise ConfigError(
                f"{source / split} has {len(empty)} ImageNet-100 class folder(s) without images: {_first_few(empty)}; "
                "ImageNet-100 needs images in all 100"
            )


def _check_val_is_sorted(val_dir: Path) -> None:
    """The official val tarball is 50,000 files in one folder; we need one folder per class."""
    with os.scandir(val_dir) as entries:
        has_class_dirs, loose_images = False, 0
        for entry in entries:
            if entry.is_dir() and entry.name.startswith("n"):
                has_class_dirs = True
                break
            if entry.is_file() and is_image_file(entry.name):
                loose_images += 1
    if not has_class_dirs and loose_images:
        raise ConfigError(
            f"{val_dir} holds image files but no class folders: it is the flat layout of the official "
            "val tarball (ILSVRC2012_val_*.JPEG); sort it into val/<wnid>/ folders first, e.g. with the "
            "ground-truth labels (LOC_val_solution.csv) or the widely used valprep.sh script"
        )


def _is_complete(dest: Path, source: Path, wnids: list[str]) -> bool:
    """dest holds exactly the links this source would give."""
    for split in SPLITS:
        split_dir = dest / split
        if not split_dir.is_dir() or sorted(os.listdir(split_dir)) != sorted(wnids):
            return False
        for w in wnids:
            link = split_dir / w
            if not link.is_symlink() or Path(os.readlink(link)) != source / split / w:
                return False
    return True


def build_imagenet100(
    source: str | Path,
    dest: str | Path,
    resize: int | None = None,
    predecode: bool = False,
    processes: int | None = None,
) -> Path:
    """Make dest/{train,val}/<wnid> symlinks to source/{train,val}/<wnid> for the 100 classes.

    resize: write JPEG copies with that shorter side instead of links; predecode (needs resize):
    also their pixels, memory-mapped (see trials.data.prepared). processes: for the copies.
    """
    source, dest = Path(source).expanduser().resolve(), Path(dest).expanduser().absolute()
    require(resize is not None or not predecode, "--predecode needs --resize (e.g. --resize 256): "
            "full-size ImageNet-100 pixels would take ~70 GB")  # fmt: skip
    if not source.is_dir():
        raise ConfigError(f"--source {source} does not exist or is not a directory")
    wnids = imagenet100_wnids()
    check_source(source, wnids)
    _check_classes_have_images(source, wnids)
    if resize is not None:
        return write_prepared_copy(source, dest, wnids, resize, predecode, processes)
    if _is_complete(dest, source, wnids):
        return dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(
            f"{dest} already exists and is not a complete ImageNet-100 built from {source}; "
            "remove it or choose another --dest"
        )
    with atomic_dir(dest) as tmp:
        for split in SPLITS:
            (tmp / split).mkdir()
            for w in wnids:
                os.symlink(source / split / w, tmp / split / w, target_is_directory=True)
    return dest
