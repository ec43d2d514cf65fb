"""Static figures of a model: trainable parameters and FLOPs per image."""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    """Trainable parameters (requires_grad), the figure the paper's tables give."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def flops_per_image(model: nn.Module, img_size: int, device: torch.device | str = "cpu") -> int:
    """Forward FLOPs for one image (2 per multiply-add), counted by torch.utils.flop_counter.

    Counts matmuls, convolutions and attention; elementwise ops (norms, softmax) are not
    counted, as in every published ViT FLOP figure.
    """
    was_training = model.training
    model.eval()
    x = torch.randn(1, 3, img_size, img_size, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())
