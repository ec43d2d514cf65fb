"""The train recipe as loader workers ran it before trials moved normalisation and random erasing to
the device batch (trials.data.device_augment): per image, in the worker, float32 out. The baseline
of benchmarks.data (its vs_train), and the reference tests hold the device erasing's draws against.
"""

import math

import torch
from PIL import Image

from trials.data.device_augment import ERASE_AREA, ERASE_LOG_RATIO, ERASE_TRIES
from trials.data.transforms import TrainTransform, normalize, to_uint8_tensor


def old_recipe(transform: TrainTransform, erasing: float):
    """The train path as workers ran it: the transform, then normalise and erase, per image."""

    def apply(img: Image.Image, g: torch.Generator) -> torch.Tensor:
        return random_erasing(normalize(transform(img, g)), erasing, g)

    return apply


def to_normalized_tensor(img: Image.Image) -> torch.Tensor:
    """uint8 HWC PIL image -> float CHW tensor normalised with the ImageNet mean/std, in the worker."""
    return normalize(to_uint8_tensor(img))


def random_erasing(x: torch.Tensor, prob: float, g: torch.Generator | None = None) -> torch.Tensor:
    """timm's RandomErasing(mode='pixel', count 1) on one image, in place: with `prob`, one box of
    normal noise; the distribution trials' DeviceAugment draws for every image of a batch at once."""
    if prob <= 0 or _uniform(g) >= prob:
        return x
    channels, height, width = x.shape
    for _ in range(ERASE_TRIES):
        target = _uniform(g, *ERASE_AREA) * height * width
        aspect = math.exp(_uniform(g, *ERASE_LOG_RATIO))
        h, w = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < h < height and 0 < w < width:
            top, left = _randint(g, height - h + 1), _randint(g, width - w + 1)
            x[:, top : top + h, left : left + w] = torch.randn((channels, h, w), generator=g, dtype=x.dtype)
            break
    return x


def _uniform(g: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * torch.rand((), generator=g).item()


def _randint(g: torch.Generator | None, high: int) -> int:
    return int(torch.randint(high, (), generator=g).item())
