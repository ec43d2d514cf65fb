"""Models: the ViT backbone, the three embeddings, super-token clustering and the registry.

The registry and the specs (which models exist, which overrides they take) import without torch;
the modules themselves load on first use (PEP 562), as in `trials/__init__.py`.
"""

import importlib

from trials.models import variants as _variants  # noqa: F401  (registers the variants; no torch)
from trials.models.registry import EMBEDDINGS, list_models, register_model, resolve_model
from trials.models.spec import BackboneConfig, ModelSpec

_LAZY = {
    "create_model": "trials.models.factory",
    "SuperTokenClustering": "trials.models.clustering",
    "ConvEmbed": "trials.models.embeddings",
    "PatchEmbed": "trials.models.embeddings",
    "SuperTokenEmbed": "trials.models.embeddings",
    "VisionTransformer": "trials.models.vit",
}

__all__ = sorted(["EMBEDDINGS", "BackboneConfig", "ModelSpec", "list_models", "register_model", "resolve_model", *_LAZY])


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trials.models' has no attribute {name!r}")
