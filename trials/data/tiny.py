"""A generated data set for tests, CI and smoke sweeps: no download, deterministic from a seed.

Class c is a shape (disk, square, diamond, ring, cross, triangle: c % 6), a texture inside it
(solid, stripes, checker: c // 6 % 3) and a band of foreground hues (c // 2 of ceil(classes / 2)
bands). Classes 2k and 2k+1 share a hue band and differ in shape, so colour alone gets at most half
right: models pick up colour in the first epoch and shape over the next ones. Every image draws its
own position, size, rotation, hue within the band, background and pixel noise.
"""

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from vocab.values import is_int
from trials.data.listing import SPLITS
from trials.errors import ConfigError, require

SHAPES = ("disk", "square", "diamond", "ring", "cross", "triangle")
TEXTURES = ("solid", "stripes", "checker")
MIN_IMG_SIZE = 8
MAX_IMG_SIZE = 1024
_CHUNK_PIXELS = 4_000_000  # images generated per vectorised step: bounded memory at 224 px
_SPLIT_IDS = {"train": 0, "val": 1}


@dataclass(frozen=True)
class TinyData:
    """Both splits as uint8 images (N, 3, H, W) and int64 labels, plus the class names."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: tuple[str, ...]


def check_tiny_args(classes: int, train_per_class: int, val_per_class: int, img_size: int, seed: int) -> None:
    """One-line ConfigError for any value the generator cannot use."""
    require(is_int(classes) and classes >= 2, f"tiny classes must be an integer >= 2, got {classes!r}")
    require(
        is_int(train_per_class) and train_per_class >= 1,
        f"tiny train images per class must be an integer >= 1, got {train_per_class!r}",
    )
    require(
        is_int(val_per_class) and val_per_class >= 1,
        f"tiny val images per class must be an integer >= 1, got {val_per_class!r}",
    )
    require(
        is_int(img_size) and MIN_IMG_SIZE <= img_size <= MAX_IMG_SIZE,
        f"tiny img_size must be an integer from {MIN_IMG_SIZE} to {MAX_IMG_SIZE} "
        f"(the models want a multiple of 16, e.g. 32), got {img_size!r}",
    )
    require(is_int(seed) and seed >= 0, f"tiny seed must be an integer >= 0, got {seed!r}")


def tiny_class_names(classes: int) -> tuple[str, ...]:
    """Names that sort in class order and say what the class looks like, e.g. '3_ring_solid_hue1'."""
    names = []
    for c in range(classes):
        shape, texture, band = _class_attributes(c)
        names.append(f"{c:0{len(str(classes - 1))}d}_{SHAPES[shape]}_{TEXTURES[texture]}_hue{band}")
    return tuple(names)


def make_tiny(
    classes: int = 10,
    train_per_class: int = 200,
    val_per_class: int = 50,
    img_size: int = 32,
    seed: int = 0,
) -> TinyData:
    """Generate both splits; the same arguments always give the same tensors."""
    check_tiny_args(classes, train_per_class, val_per_class, img_size, seed)
    return _make_tiny_cached(classes, train_per_class, val_per_class, img_size, seed)


@lru_cache(maxsize=1)  # a process running several trials generates the set once
def _make_tiny_cached(classes, train_per_class, val_per_class, img_size, seed) -> TinyData:
    train_x, train_y = generate_split(classes, train_per_class, img_size, seed, "train")
    val_x, val_y = generate_split(classes, val_per_class, img_size, seed, "val")
    return TinyData(train_x, train_y, val_x, val_y, tiny_class_names(classes))


def generate_split(classes: int, per_class: int, img_size: int, seed: int, split: str):
    """`per_class` images of each class, class-major order: (uint8 images, int64 labels)."""
    labels = torch.arange(classes).repeat_interleave(per_class)
    gen = torch.Generator().manual_seed(_split_seed(seed, split))
    chunk = max(1, _CHUNK_PIXELS // (img_size * img_size))
    images = [_draw_images(labels[i : i + chunk], classes, img_size, gen) for i in range(0, len(labels), chunk)]
    return torch.cat(images), labels


def _split_seed(seed: int, split: str) -> int:
    """Independent streams for train and val, so val is not a prefix of train for any seed."""
    state = np.random.SeedSequence([seed, _SPLIT_IDS[split]]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _class_attributes(c: int) -> tuple[int, int, int]:
    """(shape, texture, hue band) of class c."""
    return c % len(SHAPES), (c // len(SHAPES)) % len(TEXTURES), c // 2


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _draw_images(labels: torch.Tensor, classes: int, size: int, gen: torch.Generator) -> torch.Tensor:
    n = len(labels)
    attrs = torch.tensor([_class_attributes(int(c)) for c in labels]).reshape(n, 3)
    shape_id, texture_id, band = attrs[:, 0], attrs[:, 1], attrs[:, 2]

    # Per-image pose: the class must be recognised wherever and however large it is.
    cx, cy = _uniform(n, -0.35, 0.35, gen), _uniform(n, -0.35, 0.35, gen)
    radius = _uniform(n, 0.4, 0.75, gen)
    angle = _uniform(n, -0.45, 0.45, gen)
    freq = _uniform(n, 1.2, 1.8, gen)  # texture cycles per shape radius

    coords = (torch.arange(size) + 0.5) / size * 2 - 1
    ys, xs = coords.view(1, size, 1), coords.view(1, 1, size)
    dx, dy = xs - cx.view(n, 1, 1), ys - cy.view(n, 1, 1)
    cos, sin = angle.cos().view(n, 1, 1), angle.sin().view(n, 1, 1)
    r = radius.view(n, 1, 1)
    u, v = (dx * cos + dy * sin) / r, (-dx * sin + dy * cos) / r

    dist = _shape_distance(u, v, shape_id)
    pixel = 2.0 / (size * r)  # one pixel in shape units: a one-pixel anti-aliased edge
    mask = (0.5 - dist / pixel).clamp(0, 1)
    pattern = _texture(u, v, texture_id, freq.view(n, 1, 1))

    fg, fg2, bg = _colours(n, band, classes, gen)
    inside = pattern.unsqueeze(1) * fg.view(n, 3, 1, 1) + (1 - pattern.unsqueeze(1)) * fg2.view(n, 3, 1, 1)
    img = mask.unsqueeze(1) * inside + (1 - mask.unsqueeze(1)) * _background(bg, size, gen)
    img = img + 0.06 * torch.randn(img.shape, generator=gen)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _shape_distance(u: torch.Tensor, v: torch.Tensor, shape_id: torch.Tensor) -> torch.Tensor:
    """Signed distance-like field per image (negative inside), in units of the shape's radius."""
    rad = torch.sqrt(u * u + v * v)
    au, av = u.abs(), v.abs()
    fields = torch.stack(
        [
            rad - 1.0,  # disk
            torch.maximum(au, av) - 0.8,  # square
            (au + av) / math.sqrt(2) - 0.75,  # diamond
            (rad - 0.75).abs() - 0.25,  # ring
            torch.minimum(torch.maximum(au - 0.3, av - 0.95), torch.maximum(av - 0.3, au - 0.95)),  # cross
            torch.maximum(au * 0.866 + v * 0.5, -v) - 0.5,  # triangle, apex up
        ]
    )
    idx = shape_id.view(1, -1, 1, 1).expand(1, *u.shape)
    return fields.gather(0, idx).squeeze(0)


def _texture(u: torch.Tensor, v: torch.Tensor, texture_id: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
    """1 where the first foreground colour shows, 0 where the second does."""
    su, sv = torch.sin(math.pi * freq * 2 * u), torch.sin(math.pi * freq * 2 * v)
    fields = torch.stack([torch.ones_like(u), (su > 0).float(), (su * sv > 0).float()])
    idx = texture_id.view(1, -1, 1, 1).expand(1, *u.shape)
    return fields.gather(0, idx).squeeze(0)


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    k = (torch.tensor([5.0, 3.0, 1.0]).view(1, 3) + h.view(-1, 1) * 6) % 6
    return v.view(-1, 1) - v.view(-1, 1) * s.view(-1, 1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _colours(n: int, band: torch.Tensor, classes: int, gen: torch.Generator):
    """Foreground, second foreground (texture) and background colours, with enough contrast."""
    bands = math.ceil(classes / 2)
    hue = (band.float() + torch.rand(n, generator=gen)) / bands
    fg = _hsv_to_rgb(hue, _uniform(n, 0.5, 1.0, gen), _uniform(n, 0.6, 1.0, gen))
    fg2 = fg * _uniform(n, 0.15, 0.4, gen).view(n, 1)  # a darker shade of the same hue
    bg = _hsv_to_rgb(torch.rand(n, generator=gen), _uniform(n, 0.0, 0.6, gen), _uniform(n, 0.1, 0.9, gen))
    # A background as bright as the shape would hide it: move it to the far side of the range.
    low_contrast = (bg.mean(1) - fg.mean(1)).abs() < 0.25
    bg[low_contrast] = (1 - fg[low_contrast]) * 0.8
    return fg, fg2, bg


def _background(bg: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """The background colour with a smooth random shading, upsampled from a 4x4 grid."""
    n = len(bg)
    shade = torch.nn.functional.interpolate(
        0.15 * torch.randn(n, 1, 4, 4, generator=gen), size=(size, size), mode="bilinear", align_corners=False
    )
    return bg.view(n, 3, 1, 1) + shade


def write_imagefolder(
    out_dir: str | Path,
    classes: int = 10,
    train_per_class: int = 200,
    val_per_class: int = 50,
    img_size: int = 32,
    seed: int = 0,
    image_format: str = "png",
) -> Path:
    """Write the tiny set as `out_dir/{train,val}/<class>/<n>.<png|jpg>`, the ImageFolder layout."""
    from PIL import Image

    require(image_format in ("png", "jpeg"), f"image format must be png or jpeg, got {image_format!r}")
    out = Path(out_dir)
    for split in SPLITS:
        if (out / split).exists():
            raise ConfigError(f"{out / split} already exists; choose an empty output directory")
    data = make_tiny(classes, train_per_class, val_per_class, img_size, seed)
    ext = "png" if image_format == "png" else "jpg"
    options = {"quality": 95} if ext == "jpg" else {}
    for split, xs, ys in (("train", data.train_x, data.train_y), ("val", data.val_x, data.val_y)):
        for name in data.classes:
            (out / split / name).mkdir(parents=True)
        for i, (x, y) in enumerate(zip(xs, ys.tolist())):
            path = out / split / data.classes[y] / f"{i:06d}.{ext}"
            Image.fromarray(x.permute(1, 2, 0).numpy()).save(path, **options)
    return out
