"""Models: one ViT backbone, the embeddings it is measured with, super-token clustering, the registry.

Torch-free (importable to validate a spec): the registry of embeddings (trials.models.registry), the
models by name (trials.models.catalog), the embeddings the paper compares (trials.models.builtin), the
backbone sizes (trials.models.backbones), ModelSpec (trials.models.spec), Knob (trials.models.knobs). With torch:
trials.models.factory (create_model, build_model), trials.models.vit, trials.models.embeddings,
trials.models.clustering (SuperTokenClustering).
"""

from trials.models.backbones import BACKBONES
from trials.models.knobs import Knob
from trials.models.catalog import (
    all_knobs,
    knob_owners,
    list_models,
    load_plugin,
    model_name,
    registered_embeddings,
    resolve_model,
    split_model_name,
)
from trials.models.registry import register_embedding
from trials.models.spec import BackboneConfig, ModelSpec

__all__ = [
    "BACKBONES",
    "BackboneConfig",
    "Knob",
    "ModelSpec",
    "all_knobs",
    "registered_embeddings",
    "knob_owners",
    "list_models",
    "load_plugin",
    "model_name",
    "register_embedding",
    "resolve_model",
    "split_model_name",
]
