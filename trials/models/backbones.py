"""The backbone sizes, as data: every registered embedding is a model on each of them (vit_<size>_<embedding>).

`s` is the paper's ViT-S as the EarlyConv baselines configure it (pycls ViT-P/C-4.0GF: MLP ratio 3),
which the paper's parameter counts match; `ti` and `b` are DeiT-Ti and DeiT-B (MLP ratio 4), so an
embedding's gain can be checked across scale; `tiny` learns the generated data set in seconds on a CPU.
"""

from trials.models.spec import BackboneConfig

BACKBONES = {
    "tiny": BackboneConfig(dim=64, depth=3, heads=2, mlp_dim=128, num_classes=10, img_size=32),
    "ti": BackboneConfig(dim=192, depth=12, heads=3, mlp_dim=768),
    "s": BackboneConfig(dim=384, depth=12, heads=6, mlp_dim=1152),
    "b": BackboneConfig(dim=768, depth=12, heads=12, mlp_dim=3072),
}
