"""Mixup / CutMix with label smoothing, as timm's `Mixup` (mode 'batch'), and a soft-target loss.

One mixing factor per batch: each image is mixed with the batch reversed. With both alphas > 0,
CutMix is chosen with `switch_prob`, else Mixup. Targets are smoothed one-hots mixed by the same
factor, so each row sums to 1. With both alphas 0 the images pass through untouched and the
targets are the smoothed one-hots (plain one-hots when smoothing is 0 too).
"""

import numpy as np
import torch
import torch.nn.functional as F

from trials.errors import require


def smoothed_one_hot(y: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """timm's smoothing: off = smoothing / classes, on = 1 - smoothing + off."""
    off = smoothing / num_classes
    targets = torch.full((y.shape[0], num_classes), off, device=y.device)
    return targets.scatter_(1, y.view(-1, 1), 1.0 - smoothing + off)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box covering about 1 - lam of the image, clipped at the border."""
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = rng.integers(0, height), rng.integers(0, width)
    top, bottom = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height)
    left, right = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)
    return int(top), int(bottom), int(left), int(right)


class Mixer:
    """`x, targets = mixer(x, y)`: mixed images and soft targets (batch, num_classes)."""

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        seed: int = 0,
    ):
        require(num_classes >= 2, f"num_classes must be >= 2, got {num_classes!r}")
        require(mixup_alpha >= 0, f"mixup alpha must be >= 0 (0 turns mixup off), got {mixup_alpha!r}")
        require(cutmix_alpha >= 0, f"cutmix alpha must be >= 0 (0 turns cutmix off), got {cutmix_alpha!r}")
        require(0 <= switch_prob <= 1, f"mix switch probability must be in [0, 1], got {switch_prob!r}")
        require(0 <= label_smoothing < 1, f"label smoothing must be in [0, 1), got {label_smoothing!r}")
        self.num_classes = num_classes
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.switch_prob, self.label_smoothing = switch_prob, label_smoothing
        self.rng = np.random.default_rng(seed)

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def _choose(self) -> tuple[float, bool]:
        """(lam, use_cutmix) for one batch."""
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or self.rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return float(self.rng.beta(alpha, alpha)), use_cutmix

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = smoothed_one_hot(y, self.num_classes, self.label_smoothing)
        if not self.mixes:
            return x, targets
        lam, use_cutmix = self._choose()
        if use_cutmix:
            top, bottom, left, right = cutmix_box(x.shape[-2], x.shape[-1], lam, self.rng)
            x = x.clone()  # the caller's batch stays as it was
            x[..., top:bottom, left:right] = x.flip(0)[..., top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (x.shape[-2] * x.shape[-1])  # the box's true share
        else:
            x = x * lam + x.flip(0) * (1.0 - lam)
        return x, targets * lam + targets.flip(0) * (1.0 - lam)


def build_mixer(config, num_classes: int) -> Mixer:
    """The Mixer a TrialConfig asks for (mixup, cutmix, mix_switch_prob, label_smoothing, seed)."""
    return Mixer(
        num_classes,
        mixup_alpha=config.mixup,
        cutmix_alpha=config.cutmix,
        switch_prob=config.mix_switch_prob,
        label_smoothing=config.label_smoothing,
        seed=config.seed,
    )


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against soft targets (rows summing to 1); int labels are accepted too."""
    if not targets.is_floating_point():
        return F.cross_entropy(logits, targets)
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
