"""The per-image steps that run on the batch once it is on the training device.

Loader workers hand over uint8 images (a quarter of the bytes of float32 through worker shared
memory and the pinned host-to-device copy); the training loop then does

    x = x.to(device, non_blocking=True)
    x = loader.device_augment(x)      # uint8 -> ImageNet-normalised float32 (+ random erasing)

Random erasing keeps timm's per-image semantics (RandomErasing(mode='pixel', count 1), as loader
workers once ran it on each image; benchmarks.old_recipe keeps that form as the baseline): each
image independently, with probability `erasing`, gets one box of normal noise whose area is 2%-33%
of the image and whose log aspect ratio is uniform in [log 0.3, log 1/0.3], first of 10 tries that
fits. All images are drawn at once, from a generator on the batch's device, so no draw waits for
the device.
"""

import math

import torch

from trials.data.transforms import normalize

ERASE_AREA = (0.02, 1 / 3)
ERASE_LOG_RATIO = (math.log(0.3), math.log(1 / 0.3))
ERASE_TRIES = 10


class DeviceAugment:
    """`x = step(x_uint8)`: normalise a (N, 3, H, W) uint8 batch and erase boxes, on x's device.

    `reseed(seed)` restarts the erasing stream; the Loader does it from its shuffle generator at
    every epoch, so an epoch replayed after a resume erases the same boxes.
    """

    def __init__(self, erasing: float = 0.0, seed: int = 0):
        self.erasing = erasing
        self.seed = seed
        self._generator: torch.Generator | None = None

    def reseed(self, seed: int) -> None:
        self.seed, self._generator = seed, None  # made (and seeded) on the next batch's device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize(x)
        if self.erasing > 0:
            x = erase_boxes(x, self.erasing, self._generator_on(x.device))
        return x

    def _generator_on(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator


def _uniform(shape, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=g, device=device)


def erase_boxes(x: torch.Tensor, prob: float, g: torch.Generator) -> torch.Tensor:
    """Each image of the float batch x, with probability `prob`, gets one box of N(0, 1) noise."""
    n, _, height, width = x.shape
    dev = x.device
    erase = torch.rand(n, generator=g, device=dev) < prob
    # ERASE_TRIES candidate boxes per image; the first that fits inside the image is used.
    area = _uniform((n, ERASE_TRIES), *ERASE_AREA, g, dev) * (height * width)
    aspect = torch.exp(_uniform((n, ERASE_TRIES), *ERASE_LOG_RATIO, g, dev))
    box_h, box_w = torch.sqrt(area * aspect).round(), torch.sqrt(area / aspect).round()
    fits = (box_h > 0) & (box_h < height) & (box_w > 0) & (box_w < width)
    first = fits.int().argmax(dim=1, keepdim=True)  # index of the first True (0 if none: masked below)
    erase &= fits.any(dim=1)
    box_h, box_w = box_h.gather(1, first).squeeze(1), box_w.gather(1, first).squeeze(1)
    top = (torch.rand(n, generator=g, device=dev) * (height - box_h + 1)).floor()
    left = (torch.rand(n, generator=g, device=dev) * (width - box_w + 1)).floor()
    rows = torch.arange(height, device=dev).view(1, height, 1)
    cols = torch.arange(width, device=dev).view(1, 1, width)
    inside = (rows >= top.view(n, 1, 1)) & (rows < (top + box_h).view(n, 1, 1))
    inside = inside & (cols >= left.view(n, 1, 1)) & (cols < (left + box_w).view(n, 1, 1))
    mask = (inside & erase.view(n, 1, 1)).unsqueeze(1)  # (n, 1, H, W): the same box in every channel
    noise = torch.randn(x.shape, generator=g, device=dev, dtype=x.dtype)
    return torch.where(mask, noise, x)
