"""The inference-ready copy of a model that inference measurements time: the same math, in the
form a deployment would run it. The caller's model is never touched: everything happens on a
deep copy in eval mode.

- BatchNorm folded into the convolution before it: in eval mode BN is a fixed per-channel affine
  map, so conv + BN is one convolution with rescaled weights and a bias. That removes a full read
  and write of every conv output (1.6-2x on the super-token embedding on CPU).
- On CPU in fp32, every nn.Linear runs as one oneDNN call, with an exact GELU that follows it
  fused in. PyTorch sends fp32 F.linear to MKL's sgemm, which on this AMD EPYC reaches ~0.8 of
  oneDNN's rate, and adds the bias and the GELU as separate passes over the output; oneDNN
  applies both in the GEMM's epilogue. This is what Inductor's freezing does, without the
  compile time. Other devices and precisions keep nn.Linear (cuBLAS and bf16 oneDNN already
  run there).
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_NORM_AFTER = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}


def inference_ready(model: nn.Module, precision: str = "fp32") -> nn.Module:
    """A deep copy of `model` in eval mode, conv -> BatchNorm pairs folded into one conv and, on
    CPU in fp32, linears (and linear -> GELU pairs) as single oneDNN calls."""
    ready = copy.deepcopy(model).eval()
    fold_batchnorm(ready)
    if precision == "fp32" and onednn_linear_available(_device_of(ready)):
        use_onednn_linears(ready)
    return ready


def fold_batchnorm(model: nn.Module) -> int:
    """In place, on an eval-mode model: fold each BatchNorm that directly follows a conv in an
    nn.Sequential into that conv, and put an Identity where the BN was. Returns the pairs folded."""
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for conv_name, bn_name in zip(names, names[1:]):
            conv, bn = seq._modules[conv_name], seq._modules[bn_name]
            if _foldable(conv, bn):
                seq._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                seq._modules[bn_name] = nn.Identity()
                folded += 1
    return folded


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    """A conv followed by a BN of matching width that normalises with running statistics
    (a BN without them uses batch statistics even in eval, so it is not a fixed affine map)."""
    return (
        _NORM_AFTER.get(type(conv)) is type(bn)
        and not conv.training
        and not bn.training
        and bn.running_mean is not None
        and bn.num_features == conv.out_channels
    )


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def onednn_linear_available(device: torch.device) -> bool:
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class OneDnnLinear(nn.Module):
    """An nn.Linear, optionally followed by an exact GELU, as one oneDNN call (bias and GELU in the
    GEMM's epilogue). Shares the linear's parameters. Anything the fast path does not cover (other
    dtypes or devices, autograd) falls back to F.linear + F.gelu, so the module is always correct."""

    def __init__(self, linear: nn.Linear, gelu: bool = False):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self.gelu = gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast_path_applies(x):
            flat = x.reshape(-1, self.in_features).contiguous()
            attr, algorithm = ("gelu", "none") if self.gelu else ("none", "")  # "none": exact (erf) GELU
            y = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, attr, [], algorithm)
            return y.view(*x.shape[:-1], self.out_features)
        y = F.linear(x, self.weight, self.bias)
        return F.gelu(y) if self.gelu else y

    def _fast_path_applies(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == self.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
        )


def use_onednn_linears(model: nn.Module) -> int:
    """In place: Linear -> GELU pairs in an nn.Sequential become one fused OneDnnLinear (and an
    Identity); every other nn.Linear a plain OneDnnLinear. Returns the linears converted."""
    converted = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for lin_name, act_name in zip(names, names[1:]):
            lin, act = seq._modules[lin_name], seq._modules[act_name]
            if type(lin) is nn.Linear and type(act) is nn.GELU and act.approximate == "none":
                seq._modules[lin_name] = OneDnnLinear(lin, gelu=True)
                seq._modules[act_name] = nn.Identity()
                converted += 1
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Linear:
                setattr(parent, name, OneDnnLinear(child))
                converted += 1
    return converted
