"""The three embedding modules the study compares (paper Tables 3, 4 and 5).

Each maps images (B, 3, S, S) to tokens (B, N, dim) with N = (S/16)**2 and exposes
`grid_size` (tokens per side), so the backbone sizes its position embedding to match.
"""

from collections.abc import Sequence

import torch
from torch import nn

from trials.models.clustering import SuperTokenClustering
from trials.models.spec import PATCH


def conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """A 3x3 convolution module: conv (no bias, BN follows) + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class PatchEmbed(nn.Module):
    """Table 3: 16x16 patches -> LayerNorm(768) -> Linear(768, dim) -> LayerNorm(dim). 297,600 params at dim 384."""

    def __init__(self, img_size: int, dim: int = 384):
        super().__init__()
        self.grid_size = img_size // PATCH
        patch_dim = 3 * PATCH * PATCH
        self.norm_in = nn.LayerNorm(patch_dim)
        self.proj = nn.Linear(patch_dim, dim)
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        g = self.grid_size
        patches = x.reshape(b, c, g, PATCH, g, PATCH).permute(0, 2, 4, 3, 5, 1).reshape(b, g * g, -1)
        return self.norm_out(self.proj(self.norm_in(patches)))


class ConvEmbed(nn.Module):
    """Table 4 / EarlyConv (Xiao et al. 2021): 3x3 stride-2 conv-BN-ReLU stem, then a 1x1 conv to `dim`.

    The stem's widths scale with the width: dim/8, dim/4, dim/2, dim (48-96-192-384 at ViT-S, EarlyConv's
    own stem, 1,021,488 parameters). The paper's Table 4 prints 96-192-384-384, which would be ~2.9M
    parameters; its Table 1 says 1.00M, which is EarlyConv's. We build the latter and record the discrepancy.
    Four stride-2 layers make the 16x reduction of a 16x16 patch.
    """

    def __init__(self, img_size: int, dim: int = 384):
        super().__init__()
        self.grid_size = img_size // PATCH
        layers, c_in = [], 3
        for c_out in (dim // 8, dim // 4, dim // 2, dim):
            layers.append(conv_bn_relu(c_in, c_out, stride=2))
            c_in = c_out
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(c_in, dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # faster convs (1.1-1.6x measured on CPU)
        return self.proj(self.stem(x)).flatten(2).transpose(1, 2)


STRIDES = (2, 1, 2, 1, 2, 1)  # Table 5: modules 1, 3, 5 halve the map


class SuperTokenEmbed(nn.Module):
    """Table 5: `conv_depth` conv modules, optionally one extra stride-2 conv, super-token
    clustering down to the (S/16)x(S/16) token grid, then one FC layer to `dim`. The knobs'
    defaults are declared once, with the registration (trials.models.builtin).

    The clustering grid is whatever makes the output S/16 per side: 2 after all six modules
    (28x28 -> 14x14 at 224 px), 16 with no modules (Table 7's first row), 1 with the extra conv.
    """

    def __init__(
        self,
        img_size: int,
        dim: int,
        conv_depth: int,
        channels: Sequence[int],
        extra_conv: bool,
        cluster_iters: int,
        mask_border: bool,
    ):
        super().__init__()
        self.grid_size = img_size // PATCH
        layers, c_in, size = [], 3, img_size
        for c_out, stride in zip(channels[:conv_depth], STRIDES[:conv_depth]):
            layers.append(conv_bn_relu(c_in, c_out, stride))
            c_in, size = c_out, size // stride
        if extra_conv:
            layers.append(conv_bn_relu(c_in, c_in, stride=2))
            size //= 2
        self.convs = nn.Sequential(*layers)
        self.cluster = SuperTokenClustering(grid=size // self.grid_size, iters=cluster_iters, mask_border=mask_border)
        self.proj = nn.Linear(c_in, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # faster convs (1.1-1.6x measured on CPU)
        tokens = self.cluster(self.convs(x))  # (B, C, g, g)
        return self.proj(tokens.flatten(2).transpose(1, 2))
