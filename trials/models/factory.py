"""Builds a registered variant: `create_model(name, **overrides)` (the registry resolves and checks it)."""

from torch import nn

from trials.models.embeddings import ConvEmbed, PatchEmbed, SuperTokenEmbed
from trials.models.registry import resolve_model
from trials.models.spec import ModelSpec
from trials.models.vit import VisionTransformer


def build_embedding(spec: ModelSpec) -> nn.Module:
    dim = spec.backbone.dim
    if spec.embedding == "patch":
        return PatchEmbed(spec.img_size, dim)
    if spec.embedding == "conv":
        return ConvEmbed(spec.img_size, dim, spec.conv_widths)
    return SuperTokenEmbed(
        spec.img_size,
        dim,
        conv_depth=spec.conv_depth,
        channels=spec.channels,
        extra_conv=spec.extra_conv,
        cluster_iters=spec.cluster_iters,
        mask_border=spec.mask_border,
    )


def create_model(name: str, **overrides) -> VisionTransformer:
    """Build a registered variant; `model.embed` is its embedding module."""
    spec = resolve_model(name, **overrides)
    model = VisionTransformer(build_embedding(spec), spec.backbone)
    model.spec = spec
    return model
