"""Super-token clustering: STViT's super token sampling (Huang et al., CVPR 2023) as a module.

A (B, C, H, W) map is cut into grid x grid cells; each cell starts as one super token (the
cell's mean). Every pixel is softly assigned to the 9 super tokens of its cell's 3x3
neighbourhood (dot product scaled by C**-0.5, softmax over the 9), and each super token
becomes the affinity-weighted mean of the pixels that look at it. After `iters` rounds the
super tokens form the (B, C, H/grid, W/grid) output.

Layout used throughout, chosen so that each step is one dense op:
  pixels     (B, L, P, C)   L = h*w cells, P = grid*grid pixels per cell
  neighbours (B, L, C, 9)   the 9 super tokens around each cell (F.unfold of a small map)
  affinity   (B, L, P, 9)   one batched matmul, softmax over the last axis
The reference code unfolds and folds with identity convolutions over B*C single-channel maps;
here the unfold runs on the (C, h, w) super-token map and the fold on the 9 per-cell sums,
so no tensor of size B*C*H*W*9 is ever built.

Numerics follow the reference exactly (eps 1e-12, the last affinity computed without
gradient, gradients reaching the features only through the final weighted mean). Under
fp16/bf16 autocast the clustering runs in float32: 1e-12 underflows in fp16, and the
op is a small fraction of the model's FLOPs.
"""

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12  # STViT's epsilon; safe because the sums are kept in float32


def cells_to_pixels(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, h*w, grid*grid, C): the pixels of each grid cell, row-major."""
    b, c, height, width = x.shape
    h, w = height // grid, width // grid
    x = x.reshape(b, c, h, grid, w, grid).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, h * w, grid * grid, c)


def neighbours(tokens: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) super tokens -> (B, h*w, C, 9): each cell's 3x3 neighbourhood, zero-padded."""
    b, c, h, w = tokens.shape
    cols = F.unfold(tokens, kernel_size=3, padding=1)  # (B, C*9, h*w)
    return cols.reshape(b, c, 9, h * w).permute(0, 3, 1, 2)


def fold_neighbours(per_cell: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Adjoint of `neighbours`: (B, h*w, C, 9) contributions -> (B, C, h, w) summed per super token."""
    b, _, c, _ = per_cell.shape
    cols = per_cell.permute(0, 2, 3, 1).reshape(b, c * 9, h * w)
    return F.fold(cols, output_size=(h, w), kernel_size=3, padding=1)


def border_mask(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(h*w, 9) bool: True where a cell's neighbour lies outside the map (a zero pad)."""
    ones = torch.ones(1, 1, h, w, device=device)
    inside = F.unfold(ones, kernel_size=3, padding=1).reshape(9, h * w)
    return (inside == 0).t()


class SuperTokenClustering(nn.Module):
    """Map (B, C, H, W) to (B, C, H/grid, W/grid) super tokens. No trainable parameters.

    mask_border=False reproduces STViT (zero-padded border neighbours take softmax mass);
    mask_border=True excludes them from the softmax.
    """

    def __init__(self, grid: int = 2, iters: int = 3, mask_border: bool = False):
        super().__init__()
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        self.grid, self.iters, self.mask_border = grid, iters, mask_border

    def extra_repr(self) -> str:
        return f"grid={self.grid}, iters={self.iters}, mask_border={self.mask_border}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        g = self.grid
        if height % g or width % g:
            raise ValueError(f"feature map {height}x{width} is not divisible by grid {g}")
        h, w = height // g, width // g
        in_dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            if x.dtype in (torch.float16, torch.bfloat16):
                x = x.float()
            pixels = cells_to_pixels(x, g)  # (B, L, P, C)
            with torch.no_grad():
                affinity, affinity_sum = self._affinity(x, pixels, h, w)
            # The one step with gradient: the affinity-weighted mean of the pixels.
            weighted = pixels.transpose(-1, -2) @ affinity  # (B, L, C, 9)
            tokens = fold_neighbours(weighted, h, w) / (affinity_sum + EPS)
        return tokens.to(in_dtype)

    def _affinity(self, x, pixels, h, w):
        """Run the clustering iterations; return the last affinity and its per-token sums."""
        scale = x.shape[1] ** -0.5
        tokens = F.adaptive_avg_pool2d(x, (h, w))
        mask = border_mask(h, w, x.device) if self.mask_border else None
        for step in range(self.iters):
            logits = (pixels @ neighbours(tokens)) * scale  # (B, L, P, 9)
            if mask is not None:
                logits = logits.masked_fill(mask[None, :, None, :], float("-inf"))
            affinity = logits.softmax(dim=-1)
            affinity_sum = fold_neighbours(affinity.sum(dim=2, keepdim=True), h, w)  # (B, 1, h, w)
            if step < self.iters - 1:
                weighted = pixels.transpose(-1, -2) @ affinity
                tokens = fold_neighbours(weighted, h, w) / (affinity_sum + EPS)
        return affinity, affinity_sum
