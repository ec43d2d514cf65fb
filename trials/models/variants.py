"""The registered variants. ViT-S for the paper; tiny ones for tests, CI and smoke sweeps."""

from trials.models.registry import register_model
from trials.models.spec import BackboneConfig, ModelSpec

VIT_S = BackboneConfig(dim=384, depth=12, heads=6, mlp_dim=1152, num_classes=100)
# Small enough to learn the generated tiny data set in well under a minute on 2 CPU cores.
VIT_TINY = BackboneConfig(dim=64, depth=3, heads=2, mlp_dim=128, num_classes=10)
TINY_CHANNELS = (8, 16, 16, 32, 32, 32)


@register_model
def vit_s_patch() -> ModelSpec:
    return ModelSpec("patch", VIT_S)


@register_model
def vit_s_conv() -> ModelSpec:
    return ModelSpec("conv", VIT_S)


@register_model
def vit_s_supertoken() -> ModelSpec:
    return ModelSpec("supertoken", VIT_S)


@register_model
def vit_tiny_patch() -> ModelSpec:
    return ModelSpec("patch", VIT_TINY, img_size=32)


@register_model
def vit_tiny_conv() -> ModelSpec:
    return ModelSpec("conv", VIT_TINY, img_size=32, conv_widths=(8, 16, 32, 64))


@register_model
def vit_tiny_supertoken() -> ModelSpec:
    return ModelSpec("supertoken", VIT_TINY, img_size=32, channels=TINY_CHANNELS)
