"""Image transforms of the DeiT recipe, with Pillow and torch only (torchvision does not work here).

Train: RandomResizedCrop(0.08-1, 3/4-4/3) -> horizontal flip -> RandAugment rand-m9-mstd0.5-inc1
(timm's ops and magnitudes) -> uint8 tensor.
Eval: resize to img_size/0.875 -> center crop -> uint8 tensor.
Both stop at uint8 CHW: ImageNet normalisation and random erasing run on the batch on the training
device (trials.data.device_augment), which keeps loader workers cheaper and their batches 4x smaller.

Every random draw goes through an optional torch.Generator `g` (None: torch's global RNG), so a
dataset that owns a generator gets the same augmentations for the same seed, in any worker.
"""

import math

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP_FRACTION = 0.875
_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)
_STATS_ON: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # mean/std copied once per device
_FILL = tuple(round(255 * m) for m in IMAGENET_MEAN)  # timm fills uncovered pixels with the mean colour


# --- random draws through an optional generator ---


def _uniform(g: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * torch.rand((), generator=g).item()


def _randint(g: torch.Generator | None, high: int) -> int:
    """An integer in [0, high)."""
    return int(torch.randint(high, (), generator=g).item())


def _gauss(g: torch.Generator | None, mean: float, std: float) -> float:
    return mean + std * torch.randn((), generator=g).item()


# --- geometry ---


def random_resized_crop_box(
    width: int,
    height: int,
    g: torch.Generator | None = None,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a crop with random area and aspect ratio (torchvision's rule)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * _uniform(g, *scale)
        aspect = math.exp(_uniform(g, *log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = _randint(g, width - w + 1), _randint(g, height - h + 1)
            return left, top, left + w, top + h
    # Fallback: the whole image, clipped to the ratio range, centred.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        return img.resize((size, max(1, round(h * size / w))), Image.BICUBIC)
    return img.resize((max(1, round(w * size / h)), size), Image.BICUBIC)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    left, top = round((w - size) / 2), round((h - size) / 2)
    return img.crop((left, top, left + size, top + size))


# --- RandAugment (timm's rand-m9-mstd0.5-inc1: "increasing" ops, 2 layers, prob 0.5 each) ---

_MAX_LEVEL = 10.0


def _signed(level: float, g) -> float:
    return -level if _uniform(g) < 0.5 else level


def _affine(img: Image.Image, matrix: tuple) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=_FILL)


def _shear_x(img, m, g):
    return _affine(img, (1, _signed(m / _MAX_LEVEL * 0.3, g), 0, 0, 1, 0))


def _shear_y(img, m, g):
    return _affine(img, (1, 0, 0, _signed(m / _MAX_LEVEL * 0.3, g), 1, 0))


def _translate_x(img, m, g):
    return _affine(img, (1, 0, _signed(m / _MAX_LEVEL * 0.45, g) * img.size[0], 0, 1, 0))


def _translate_y(img, m, g):
    return _affine(img, (1, 0, 0, 0, 1, _signed(m / _MAX_LEVEL * 0.45, g) * img.size[1]))


def _rotate(img, m, g):
    return img.rotate(_signed(m / _MAX_LEVEL * 30.0, g), resample=Image.BILINEAR, fillcolor=_FILL)


def _enhance(kind):
    def op(img, m, g):
        return kind(img).enhance(max(0.1, 1.0 + _signed(m / _MAX_LEVEL * 0.9, g)))

    return op


def _posterize_increasing(img, m, g):
    return ImageOps.posterize(img, max(1, 4 - int(m / _MAX_LEVEL * 4)))  # Pillow refuses 0 bits


def _solarize_increasing(img, m, g):
    return ImageOps.solarize(img, 256 - int(m / _MAX_LEVEL * 256))


def _solarize_add(img, m, g):
    add = int(m / _MAX_LEVEL * 110)
    lut = [min(255, i + add) if i < 128 else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


RAND_AUGMENT_OPS = {
    "AutoContrast": lambda img, m, g: ImageOps.autocontrast(img),
    "Equalize": lambda img, m, g: ImageOps.equalize(img),
    "Invert": lambda img, m, g: ImageOps.invert(img),
    "Rotate": _rotate,
    "PosterizeIncreasing": _posterize_increasing,
    "SolarizeIncreasing": _solarize_increasing,
    "SolarizeAdd": _solarize_add,
    "ColorIncreasing": _enhance(ImageEnhance.Color),
    "ContrastIncreasing": _enhance(ImageEnhance.Contrast),
    "BrightnessIncreasing": _enhance(ImageEnhance.Brightness),
    "SharpnessIncreasing": _enhance(ImageEnhance.Sharpness),
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateXRel": _translate_x,
    "TranslateYRel": _translate_y,
}


class RandAugment:
    """`num_ops` ops drawn with replacement, each applied with prob 0.5 at magnitude ~ N(m, std)."""

    def __init__(self, magnitude: float = 9.0, magnitude_std: float = 0.5, num_ops: int = 2, prob: float = 0.5):
        self.magnitude, self.magnitude_std, self.num_ops, self.prob = magnitude, magnitude_std, num_ops, prob
        self.names = list(RAND_AUGMENT_OPS)

    def __call__(self, img: Image.Image, g: torch.Generator | None = None) -> Image.Image:
        for _ in range(self.num_ops):
            name = self.names[_randint(g, len(self.names))]
            if _uniform(g) >= self.prob:
                continue
            magnitude = min(_MAX_LEVEL, max(0.0, _gauss(g, self.magnitude, self.magnitude_std)))
            img = RAND_AUGMENT_OPS[name](img, magnitude, g)
        return img


# --- tensors ---


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> uint8 CHW tensor (what loader workers hand over)."""
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def _stats_on(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if device not in _STATS_ON:
        _STATS_ON[device] = (_MEAN.to(device), _STD.to(device))
    return _STATS_ON[device]


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (..., 3, H, W) on any device -> float32, ImageNet-normalised, on that device."""
    mean, std = _stats_on(x.device)
    return x.to(torch.float32, copy=True).div_(255.0).sub_(mean).div_(std)


# --- the two pipelines ---


class TrainTransform:
    """PIL image -> augmented uint8 tensor (3, img_size, img_size); erasing follows on the device."""

    def __init__(self, img_size: int, randaugment: bool = True):
        self.img_size = img_size
        self.randaugment = RandAugment() if randaugment else None

    def __call__(self, img: Image.Image, g: torch.Generator | None = None) -> torch.Tensor:
        box = random_resized_crop_box(*img.size, g)
        img = img.resize((self.img_size, self.img_size), Image.BICUBIC, box=box)
        if _uniform(g) < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if self.randaugment is not None:
            img = self.randaugment(img, g)
        return to_uint8_tensor(img)


class EvalTransform:
    """PIL image -> resize shorter side to img_size/0.875, center crop img_size, uint8 tensor."""

    def __init__(self, img_size: int, crop_fraction: float = EVAL_CROP_FRACTION):
        self.img_size = img_size
        self.resize_to = math.floor(img_size / crop_fraction)

    def __call__(self, img: Image.Image, g: torch.Generator | None = None) -> torch.Tensor:
        return to_uint8_tensor(center_crop(resize_shorter(img, self.resize_to), self.img_size))


# --- cheap tensor-level augmentation for in-memory data ---


def pad_crop_flip(x: torch.Tensor, padding: int, g: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of a zero-padded image back to its size, then a random horizontal flip."""
    _, height, width = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    top, left = _randint(g, 2 * padding + 1), _randint(g, 2 * padding + 1)
    x = padded[:, top : top + height, left : left + width]
    return x.flip(-1) if _uniform(g) < 0.5 else x
