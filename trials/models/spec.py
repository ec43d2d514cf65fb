"""What defines a model, as plain data: importable without torch, so that a sweep spec or a trial
config is validated (trials.models.registry.resolve_model) before torch is even loaded."""

from dataclasses import dataclass

PATCH = 16  # every embedding reduces the image by 16 per side, as ViT-S/16 does
DEFAULT_CHANNELS = (16, 32, 32, 64, 64, 64)  # the super-token embedding's six conv modules (Table 5)
MAX_CONV_DEPTH = len(DEFAULT_CHANNELS)


@dataclass(frozen=True)
class BackboneConfig:
    dim: int = 384
    depth: int = 12
    heads: int = 6
    mlp_dim: int = 1152
    num_classes: int = 100
    drop_path: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines one variant; overrides replace fields of it."""

    embedding: str
    backbone: BackboneConfig
    img_size: int = 224
    conv_widths: tuple[int, ...] = (48, 96, 192, 384)  # EarlyConv stem (conv embedding only)
    conv_depth: int = MAX_CONV_DEPTH
    extra_conv: bool = False
    cluster_iters: int = 3
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    mask_border: bool = False
