"""What defines a model, as plain data: importable without torch, so that a sweep spec or a trial
config is validated (trials.models.catalog.resolve_model) before torch is even loaded."""

from dataclasses import dataclass, field, replace

PATCH = 16  # every embedding reduces the image by 16 per side, as ViT-S/16 does


@dataclass(frozen=True)
class BackboneConfig:
    dim: int = 384
    depth: int = 12
    heads: int = 6
    mlp_dim: int = 1152
    num_classes: int = 100
    drop_path: float = 0.0
    img_size: int = 224  # the input size of this backbone's models unless overridden


@dataclass(frozen=True)
class ModelSpec:
    """One model, resolved: the registered name, its embedding and backbone, and every knob's value."""

    name: str  # vit_<backbone>_<embedding>
    embedding: str
    backbone_name: str
    backbone: BackboneConfig  # num_classes and drop_path applied
    img_size: int
    knobs: dict = field(default_factory=dict)  # every knob the embedding declares, defaults included

    def with_classes(self, num_classes: int) -> "ModelSpec":
        return replace(self, backbone=replace(self.backbone, num_classes=num_classes))
