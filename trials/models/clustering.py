"""Super-token clustering: STViT's super token sampling (Huang et al., CVPR 2023) as a module.

A (B, C, H, W) map is cut into grid x grid cells; each cell starts as one super token (the
cell's mean). Every pixel is softly assigned to the 9 super tokens of its cell's 3x3
neighbourhood (dot product scaled by C**-0.5, softmax over the 9), and each super token
becomes the affinity-weighted mean of the pixels that look at it. After `iters` rounds the
super tokens form the (B, C, H/grid, W/grid) output.

Layout used throughout, chosen so that each step is one dense op (L = B*h*w cells):
  pixels     (L, P, C+1)    P = grid*grid pixels per cell, copied once from the input, plus ones
  neighbours (L, 9, C)      the 9 super tokens around each cell: one strided copy of a padded map
  affinity   (L, 9, P)      one batched matmul, softmax over the 9
  tokens     (B, h, w, C)   channels last, so that a cell's neighbourhood is a strided view
The reference code unfolds and folds with identity convolutions over B*C single-channel maps;
here the unfold is a strided view of the small super-token map and the fold one index_add_.
An iteration is ~10 tensor ops.

Gradient: STViT computes every affinity without gradient, so the output is linear in the input
for a fixed affinity. The autograd.Function below uses that: its forward keeps only the last
affinity (L, 9, P) and normaliser, and its backward is one gather and one batched matmul. That
makes it faster and much smaller in memory than letting autograd record the steps.

Numerics follow the reference exactly (eps 1e-12, zero-padded neighbours at the border). Under
fp16/bf16 autocast the clustering runs in float32: 1e-12 underflows in fp16, and the op is a
small fraction of the model's FLOPs.

`fused="auto"` runs the same code through torch.compile on CUDA (one-off compile, then fused
kernels); on CPU the eager path is faster than what Inductor generates, so "auto" keeps it.
"""

from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12  # STViT's epsilon; safe because the sums are kept in float32


def cells_to_pixels(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, C, H, W) -> (B*h*w, grid*grid, C+1): the pixels of each cell, row-major, and a column of ones.

    One copy; cheap when x is channels_last (contiguous runs of C), a full transpose otherwise.
    The ones make each weighted sum of pixels carry its sum of weights in its last channel.
    """
    b, c, height, width = x.shape
    h, w = height // grid, width // grid
    cells = x.permute(0, 2, 3, 1).reshape(b, h, grid, w, grid, c).transpose(2, 3)
    pixels = x.new_ones(b * h * w, grid * grid, c + 1)
    pixels[..., :c].view(b, h, w, grid, grid, c).copy_(cells)
    return pixels


def pixels_to_image(pixels: torch.Tensor, b: int, h: int, w: int, grid: int) -> torch.Tensor:
    """(B*h*w, grid*grid, C) back to a (B, C, H, W) tensor in channels_last memory."""
    c = pixels.shape[-1]
    image = pixels.view(b, h, w, grid, grid, c).transpose(2, 3).reshape(b, h * grid, w * grid, c)
    return image.permute(0, 3, 1, 2)


def neighbours(tokens: torch.Tensor) -> torch.Tensor:
    """(B, h, w, C) -> (B*h*w, 9, C): each cell's 3x3 neighbourhood of tokens, zero-padded."""
    b, h, w, c = tokens.shape
    padded = F.pad(tokens, (0, 0, 1, 1, 1, 1))
    sb, sh, sw, sc = padded.stride()
    windows = padded.as_strided((b, h, w, 3, 3, c), (sb, sh, sw, sh, sw, sc))  # a view, no copy
    return windows.reshape(b * h * w, 9, c)


def fold_index(b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(B*h*w*9,) row of each (cell, neighbour) pair in the zero-padded (B*(h+2)*(w+2)) token map."""
    rows = torch.arange(h, device=device).view(h, 1, 1, 1) + torch.arange(3, device=device).view(1, 1, 3, 1)
    cols = torch.arange(w, device=device).view(1, w, 1, 1) + torch.arange(3, device=device).view(1, 1, 1, 3)
    in_image = (rows * (w + 2) + cols).reshape(1, -1)
    return (torch.arange(b, device=device).view(b, 1) * ((h + 2) * (w + 2)) + in_image).reshape(-1)


def fold_neighbours(per_cell: torch.Tensor, index: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """Adjoint of `neighbours`: (B*h*w, 9, K) contributions -> (B, h, w, K) summed per token.

    One index_add_ into the padded map (whose border rows are then dropped), not 9 slice-adds.
    """
    k = per_cell.shape[-1]
    padded = per_cell.new_zeros(b * (h + 2) * (w + 2), k).index_add_(0, index, per_cell.reshape(-1, k))
    return padded.view(b, h + 2, w + 2, k)[:, 1 : h + 1, 1 : w + 1]


def border_mask(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(h*w, 9, 1) bool: True where a cell's neighbour lies outside the map (a zero pad)."""
    inside = neighbours(torch.ones(1, h, w, 1, device=device))
    return inside == 0


def cluster_cells(pixels: torch.Tensor, b: int, h: int, w: int, iters: int, mask_border: bool):
    """The clustering iterations on (B*h*w, P, C+1) pixels (`cells_to_pixels`).

    Returns the super tokens (B, h, w, C), the last affinity (B*h*w, 9, P) and the per-token
    affinity sums (B, h, w, 1) the tokens were divided by.
    """
    c = pixels.shape[-1] - 1
    features_t = pixels[..., :c].transpose(1, 2)  # (L, C, P), a view
    index = fold_index(b, h, w, pixels.device)
    mask = border_mask(h, w, pixels.device).repeat(b, 1, 1) if mask_border else None
    tokens = pixels[..., :c].mean(dim=1).view(b, h, w, c)
    logits = pixels.new_empty(b * h * w, 9, pixels.shape[1])
    for _ in range(iters):
        # (L, 9, P) = scale * neighbours @ pixels^T, in one op
        logits = torch.baddbmm(logits, neighbours(tokens), features_t, beta=0, alpha=c**-0.5)
        if mask is not None:
            logits.masked_fill_(mask, float("-inf"))
        affinity = logits.softmax(dim=1)  # over the 9 neighbours
        sums = fold_neighbours(affinity @ pixels, index, b, h, w)  # (B, h, w, C+1): weighted sums, weights
        norm = sums[..., c:]
        tokens = sums[..., :c] / (norm + EPS)
    return tokens, affinity, norm


class _Clustering(torch.autograd.Function):
    """Forward: the clustering. Backward: the gradient through the last weighted mean only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, grid: int, iters: int, mask_border: bool) -> torch.Tensor:
        b, _, height, width = x.shape
        h, w = height // grid, width // grid
        tokens, affinity, norm = cluster_cells(cells_to_pixels(x, grid), b, h, w, iters, mask_border)
        ctx.save_for_backward(affinity, norm)
        ctx.grid = grid
        return tokens.permute(0, 3, 1, 2)  # (B, C, h, w), channels_last memory

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        affinity, norm = ctx.saved_tensors
        grad = grad_out.permute(0, 2, 3, 1) / (norm + EPS)  # (B, h, w, C)
        b, h, w, _ = grad.shape
        # each pixel gathers the gradient of its 9 tokens, weighted by its affinity to them
        grad_pixels = affinity.transpose(1, 2) @ neighbours(grad)  # (L, P, C)
        return pixels_to_image(grad_pixels, b, h, w, ctx.grid), None, None, None


def super_token_clustering(x: torch.Tensor, grid: int, iters: int, mask_border: bool = False) -> torch.Tensor:
    """Functional form of SuperTokenClustering (eager), for a float (B, C, H, W) map."""
    return _Clustering.apply(x, grid, iters, mask_border)


# torch.compile keeps at most `recompile_limit` (8) compiled variants of a function, and with
# fullgraph=True the next is an error. The clustering needs one per iters, grid, mask_border, grad
# mode (train, no_grad, inference_mode) and static/dynamic shape: ~5 per configuration in one trial,
# so a process measuring iters 1-4, or a Ray actor reused across trials, needs more.
RECOMPILE_LIMIT = 64


@cache
def compiled_clustering(backend: str = "inductor"):
    """super_token_clustering through torch.compile, built once (compiles per shape on first use).

    fullgraph: the whole autograd.Function, forward and backward, is one graph or an error. The
    recompile limit is raised for this function's calls only.
    """
    compiled = torch.compile(super_token_clustering, fullgraph=True, backend=backend)
    return torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT)(compiled)


class SuperTokenClustering(nn.Module):
    """Map (B, C, H, W) to (B, C, H/grid, W/grid) super tokens. No trainable parameters.

    mask_border=False reproduces STViT (zero-padded border neighbours take softmax mass);
    mask_border=True excludes them from the softmax.
    fused: "auto" (torch.compile on CUDA, eager elsewhere), True (always compile) or False.
    """

    def __init__(self, grid: int = 2, iters: int = 3, mask_border: bool = False, fused: bool | str = "auto"):
        super().__init__()
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        if fused not in (True, False, "auto"):
            raise ValueError(f"fused must be True, False or 'auto', got {fused!r}")
        self.grid, self.iters, self.mask_border, self.fused = grid, iters, mask_border, fused

    def extra_repr(self) -> str:
        return f"grid={self.grid}, iters={self.iters}, mask_border={self.mask_border}, fused={self.fused!r}"

    def uses_compile(self, device: torch.device) -> bool:
        return self.fused is True or (self.fused == "auto" and device.type == "cuda")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        if height % self.grid or width % self.grid:
            raise ValueError(f"feature map {height}x{width} is not divisible by grid {self.grid}")
        fn = compiled_clustering() if self.uses_compile(x.device) else super_token_clustering
        in_dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            if x.dtype in (torch.float16, torch.bfloat16):
                x = x.float()
            out = fn(x, self.grid, self.iters, self.mask_border)
        return out.to(in_dtype)
