"""An embedding of your own, measured beside the paper's three: overlapping patches.

A kernel x kernel convolution with stride 16: kernel 16 is ViT's patch embedding as a conv, a larger
kernel lets neighbouring patches overlap. Registering it is all tokensweep needs.
"""

import torch
from torch import nn

from trials.plugins import Knob, register_embedding


class OverlapPatchEmbed(nn.Module):
    def __init__(self, img_size: int, dim: int, kernel: int):
        super().__init__()
        self.grid_size = img_size // 16  # tokens per side: the backbone sizes its position embedding by it
        # padding (kernel - 16 + 1) // 2 keeps the output at img_size / 16 per side for any kernel >= 16
        self.proj = nn.Conv2d(3, dim, kernel, stride=16, padding=(kernel - 15) // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))  # (B, (S/16)**2, dim)


@register_embedding(knobs=[Knob("kernel", int, default=16, low=16, high=32, help="patch size; > 16 overlaps")])
def overlap_patch(img_size: int, dim: int, *, kernel: int = 16) -> nn.Module:
    """Overlapping patches: a kernel x kernel conv with stride 16, then LayerNorm."""
    return OverlapPatchEmbed(img_size, dim, kernel)
