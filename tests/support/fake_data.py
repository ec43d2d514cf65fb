"""Data sets the trials' tests make on disk: an ImageNet-1k layout in miniature, and the smoke trial's
settings for an image folder."""

from pathlib import Path

import numpy as np
from PIL import Image

from trials import TrialConfig
from trials.data import imagenet100_wnids

OUTSIDE = "n99999999"  # a class of ImageNet-1k that ImageNet-100 leaves out


def fake_imagenet(root: Path, wnids=None, *, missing_train=(), empty_train=None, bad=None) -> Path:
    """ImageNet-1k's layout with one JPEG per class and split, landscape and portrait in turn, for WNIDS
    (ImageNet-100's by default) and one class outside ImageNet-100. MISSING_TRAIN: wnids without a
    train folder; EMPTY_TRAIN: a wnid whose train folder holds no image; BAD: a wnid whose train
    folder also holds a text file named .JPEG."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i, w in enumerate([*(imagenet100_wnids() if wnids is None else wnids), OUTSIDE]):
            if split == "train" and w in missing_train:
                continue
            (root / split / w).mkdir(parents=True)
            if split == "train" and w == empty_train:
                continue
            size = (300, 200) if i % 2 else (180, 320)
            pixels = rng.integers(0, 256, (size[1] // 10, size[0] // 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize(size).save(root / split / w / f"{w}_{i}.JPEG", quality=90)
    if bad is not None:
        (root / "train" / bad / "zz_broken.JPEG").write_text("not a JPEG")
    return root


def folder_config(data_dir, **overrides) -> TrialConfig:
    """The smoke trial on the image folder DATA_DIR, batches of 4, no loader workers."""
    base = dict(model="vit_tiny_patch", dataset="imagefolder", data_dir=str(data_dir), batch_size=4, workers=0)
    return TrialConfig.smoke(**{**base, **overrides})
