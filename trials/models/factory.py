"""Builds a registered model: `create_model(name, **overrides)`, or `build_model(spec)` from a resolved spec."""

import torch
from torch import nn

from trials.errors import PluginError
from trials.models.catalog import registered_embeddings, resolve_model
from trials.models.spec import PATCH, ModelSpec
from trials.models.vit import VisionTransformer


def build_embedding(spec: ModelSpec) -> nn.Module:
    embed = registered_embeddings()[spec.embedding].build(spec.img_size, spec.backbone.dim, **spec.knobs)
    expected = spec.img_size // PATCH
    if getattr(embed, "grid_size", None) != expected:
        raise PluginError(
            f"embedding {spec.embedding!r} built a module whose .grid_size is {getattr(embed, 'grid_size', None)!r}; "
            f"at img_size {spec.img_size} it must be {expected} (tokens per side: img_size // {PATCH})"
        )
    return embed


def build_model(spec: ModelSpec) -> VisionTransformer:
    model = VisionTransformer(build_embedding(spec), spec.backbone)
    model.spec = spec
    return model


def create_model(name: str, **overrides) -> VisionTransformer:
    """Build a registered model; `model.embed` is its embedding module, `model.spec` what defines it."""
    return build_model(resolve_model(name, **overrides))


@torch.no_grad()
def check_embedding(spec: ModelSpec) -> None:
    """Build a user's embedding once at the spec's size and run one image through it: a wrong token
    grid or width is a one-line PluginError before any trial starts, not a shape error inside one."""
    try:
        embed = build_embedding(spec).eval()
        x = torch.zeros(1, 3, spec.img_size, spec.img_size)
        tokens = embed(x)
    except PluginError:
        raise
    except Exception as err:
        raise PluginError(f"embedding {spec.embedding!r} fails at img_size {spec.img_size}, dim {spec.backbone.dim}: "
                          f"{type(err).__name__}: {err}".replace("\n", " ")) from None  # fmt: skip
    grid = spec.img_size // PATCH
    expected = (1, grid * grid, spec.backbone.dim)
    if tuple(getattr(tokens, "shape", ())) != expected:
        raise PluginError(
            f"embedding {spec.embedding!r} maps a (1, 3, {spec.img_size}, {spec.img_size}) batch to shape "
            f"{tuple(getattr(tokens, 'shape', ()))}; expected {expected} ((img_size/16)**2 tokens of width dim)"
        )
