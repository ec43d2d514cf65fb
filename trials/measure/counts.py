"""Static figures of a model: trainable parameters and FLOPs per image."""

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop


def count_params(module: nn.Module) -> int:
    """Trainable parameters (requires_grad), the figure the paper's tables give."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _flash_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop(query, key, value)  # QK^T and AV; shapes, as FlopCounterMode passes them


# torch's FLOP counter has formulas for the CUDA attention kernels but not for the CPU one, which would
# leave QK^T and AV (~9% of ViT-S) out of every CPU count: the same model must count the same anywhere.
ATTENTION_KERNELS_WITHOUT_FORMULA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _flash_attention_flops}


def model_counts(model: nn.Module, img_size: int, device: torch.device | str = "cpu") -> dict:
    """The static figures by vocab's names: params, embed_params (the embedding alone), flops per image."""
    return {"params": count_params(model), "embed_params": count_params(model.embed),
            "flops": flops_per_image(model, img_size, device)}  # fmt: skip


def flops_per_image(model: nn.Module, img_size: int, device: torch.device | str = "cpu") -> int:
    """Forward FLOPs for one image (2 per multiply-add), counted by torch.utils.flop_counter.

    Counts matmuls, convolutions and attention; elementwise ops (norms, softmax) are not
    counted, as in every published ViT FLOP figure.
    """
    was_training = model.training
    model.eval()
    x = torch.randn(1, 3, img_size, img_size, device=device)
    try:
        return count_flops(lambda: model(x))
    finally:
        model.train(was_training)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of fn, without gradients, as flops_per_image counts them (any part of a model)."""
    counter = FlopCounterMode(display=False, custom_mapping=ATTENTION_KERNELS_WITHOUT_FORMULA)
    # force_eager: a compiled module (the clustering on CUDA) runs its eager code, whose ops the counter
    # sees; compiled under the counter's dispatch mode it would fail (torch 2.13) or stop compiling (2.11)
    with torch.compiler.set_stance("force_eager"), counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())
