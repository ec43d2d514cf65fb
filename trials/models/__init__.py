"""Models: the ViT backbone, the three embeddings, super-token clustering and the registry."""

from trials.models import variants as _variants  # noqa: F401  (registers the variants)
from trials.models.clustering import SuperTokenClustering
from trials.models.embeddings import ConvEmbed, PatchEmbed, SuperTokenEmbed
from trials.models.registry import EMBEDDINGS, ModelSpec, create_model, list_models, register_model, resolve_model
from trials.models.vit import BackboneConfig, VisionTransformer

__all__ = [
    "EMBEDDINGS",
    "BackboneConfig",
    "ConvEmbed",
    "ModelSpec",
    "PatchEmbed",
    "SuperTokenClustering",
    "SuperTokenEmbed",
    "VisionTransformer",
    "create_model",
    "list_models",
    "register_model",
    "resolve_model",
]
