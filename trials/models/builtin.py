"""The three embeddings the paper compares, registered as any user's embedding is (the decorator and
Knob that trials.plugins exports).

Each builder imports its module when called, not at registration: a spec or a config is then
validated, and `--help` answers, without loading torch.
"""

from trials.models.knobs import Knob
from trials.models.registry import register_embedding

PAPER_CHANNELS = (16, 32, 32, 64, 64, 64)  # Table 5: the six conv modules' widths


@register_embedding()
def patch(img_size: int, dim: int):
    """Table 3: 16x16 patches -> LayerNorm -> Linear -> LayerNorm (297,600 parameters at width 384)."""
    from trials.models.embeddings import PatchEmbed

    return PatchEmbed(img_size, dim)


@register_embedding()
def conv(img_size: int, dim: int):
    """Table 4 / EarlyConv: four 3x3 stride-2 conv-BN-ReLU (dim/8, /4, /2, dim) and a 1x1 conv."""
    from trials.models.embeddings import ConvEmbed

    return ConvEmbed(img_size, dim)


@register_embedding(
    knobs=[
        Knob("conv_depth", int, default=6, low=0, high=6, help="conv modules before the clustering (Table 7)"),
        Knob("extra_conv", bool, default=False, help="one more stride-2 conv after them (Table 7's last row)"),
        Knob("cluster_iters", int, default=3, low=1, high=16, help="similarity updates of the clustering (Table 8)"),
        Knob("channels", tuple, default=PAPER_CHANNELS, low=1, high=1024, help="widths of the six conv modules (Table 5)"),
        Knob("mask_border", bool, default=False, help="keep zero-padded border neighbours out of the softmax"),
    ],
    backbone_defaults={"tiny": {"channels": (8, 16, 16, 32, 32, 32)}},
)
def supertoken(
    img_size: int,
    dim: int,
    *,
    conv_depth: int = 6,
    extra_conv: bool = False,
    cluster_iters: int = 3,
    channels: tuple = PAPER_CHANNELS,
    mask_border: bool = False,
):
    """Table 5: conv modules, super-token clustering to the (S/16)^2 grid, then one FC layer to `dim`."""
    from trials.models.embeddings import SuperTokenEmbed

    return SuperTokenEmbed(img_size, dim, conv_depth, channels, extra_conv, cluster_iters, mask_border)
