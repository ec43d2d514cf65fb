"""TrialConfig: everything one trial needs, typed and validated in one place.

Flags, TOML files and sweep specs all become a plain dict, then `TrialConfig.from_dict`, which
rejects unknown keys (suggesting the closest one), wrong types and out-of-range values with a
one-line ConfigError. Defaults are the paper's recipe (Table 2 + DeiT); `smoke()` is the tiny
CPU configuration CI and the README's first command use.
"""

import dataclasses
import os
import typing
from dataclasses import dataclass
from difflib import get_close_matches

from trials.errors import ConfigError, require

DATASETS = ("tiny", "imagefolder", "imagenet100")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BAD_IMAGE_POLICIES = ("fail", "skip")


@dataclass(frozen=True)
class TrialConfig:
    # --- model (None: the variant's default) ---
    model: str = "vit_s_supertoken"
    img_size: int | None = None
    conv_depth: int | None = None
    extra_conv: bool | None = None
    cluster_iters: int | None = None
    channels: tuple[int, ...] | None = None
    mask_border: bool | None = None
    drop_path: float = 0.1
    # --- data ---
    dataset: str = "tiny"
    data_dir: str | None = None
    tiny_classes: int = 10
    tiny_train_per_class: int = 200
    tiny_val_per_class: int = 50
    randaugment: bool = True
    random_erasing: float = 0.25
    workers: int = 4
    bad_images: str = "fail"  # a truncated or non-image file: "fail" the trial, or "skip" and count it
    # --- recipe (paper Table 2 and the DeiT recipe it builds on) ---
    epochs: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 5.0
    min_lr: float = 1e-5
    clip_grad: float | None = 5.0
    label_smoothing: float = 0.1
    mixup: float = 0.8
    cutmix: float = 1.0
    mix_switch_prob: float = 0.5
    seed: int = 0
    max_steps_per_epoch: int | None = None  # cap for smoke runs; None: the whole train split
    # --- execution and measurement ---
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    threads: int | None = None  # CPU threads for torch; None: torch's default
    measure: bool = True  # params, FLOPs and images/sec after the last epoch
    bench_batch: int = 64
    bench_steps: int = 10
    gpu_shared: bool = False  # set by the platform when a trial shares its GPU

    @classmethod
    def smoke(cls, model: str = "vit_tiny_supertoken", **overrides) -> "TrialConfig":
        """Tiny data, tiny model, a few epochs: learns above 2x chance in well under a minute on 2 cores."""
        base = dict(
            model=model,
            dataset="tiny",
            epochs=6,
            batch_size=64,
            lr=2e-3,
            warmup_epochs=1.0,
            drop_path=0.0,
            mixup=0.0,
            cutmix=0.0,
            randaugment=False,
            random_erasing=0.0,
            label_smoothing=0.0,
            workers=0,
            bench_batch=32,
            bench_steps=5,
        )
        base.update(overrides)
        return cls.from_dict(base)

    @classmethod
    def from_dict(cls, values: dict, where: str = "") -> "TrialConfig":
        """Validate and build; `where` prefixes error messages (e.g. 'spec.toml: trial.')."""
        names = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in names:
                close = get_close_matches(key, sorted(names), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown trial option {where}{key!r}{hint}")
        hints = typing.get_type_hints(cls)
        coerced = {k: _coerce(f"{where}{k}", v, hints[k]) for k, v in values.items()}
        config = cls(**coerced)
        config.validate(where)
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrialConfig":
        return TrialConfig.from_dict({**self.to_dict(), **changes})

    def model_overrides(self) -> dict:
        """The create_model overrides this config sets (None ones dropped)."""
        keys = ("img_size", "conv_depth", "extra_conv", "cluster_iters", "channels", "mask_border", "drop_path")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def validate(self, where: str = "") -> None:
        def check(ok: bool, key: str, rule: str) -> None:
            require(ok, f"{where}{key} must be {rule}, got {getattr(self, key)!r}")

        check(self.dataset in DATASETS, "dataset", f"one of {', '.join(DATASETS)}")
        if self.dataset != "tiny":
            require(self.data_dir is not None, f"{where}data_dir must be set for dataset {self.dataset!r}")
            require(
                os.path.isdir(self.data_dir),
                f"{where}data_dir {self.data_dir!r} does not exist or is not a directory "
                "(expected an ImageFolder root with train/ and val/)",
            )
        check(self.tiny_classes >= 2, "tiny_classes", "an integer >= 2")
        check(self.tiny_train_per_class >= 1, "tiny_train_per_class", "an integer >= 1")
        check(self.tiny_val_per_class >= 1, "tiny_val_per_class", "an integer >= 1")
        check(0 <= self.random_erasing <= 1, "random_erasing", "a probability in [0, 1]")
        check(self.workers >= 0, "workers", "an integer >= 0")
        check(self.bad_images in BAD_IMAGE_POLICIES, "bad_images", f"one of {', '.join(BAD_IMAGE_POLICIES)}")
        check(1 <= self.epochs <= 10_000, "epochs", "an integer from 1 to 10000")
        check(1 <= self.batch_size <= 65_536, "batch_size", "an integer from 1 to 65536")
        check(0 < self.lr <= 10, "lr", "a number in (0, 10]")
        check(0 <= self.weight_decay <= 10, "weight_decay", "a number in [0, 10]")
        check(0 <= self.warmup_epochs <= self.epochs, "warmup_epochs", f"a number in [0, epochs={self.epochs}]")
        check(0 <= self.min_lr <= self.lr, "min_lr", f"a number in [0, lr={self.lr}]")
        check(self.clip_grad is None or self.clip_grad > 0, "clip_grad", "a positive number or unset")
        check(0 <= self.label_smoothing < 1, "label_smoothing", "a number in [0, 1)")
        check(self.mixup >= 0, "mixup", "an alpha >= 0 (0 turns mixup off)")
        check(self.cutmix >= 0, "cutmix", "an alpha >= 0 (0 turns cutmix off)")
        check(0 <= self.mix_switch_prob <= 1, "mix_switch_prob", "a probability in [0, 1]")
        check(self.seed >= 0, "seed", "an integer >= 0")
        check(
            self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
            "max_steps_per_epoch",
            "an integer >= 1 or unset",
        )
        check(self.device in DEVICES, "device", f"one of {', '.join(DEVICES)}")
        check(self.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}")
        check(self.threads is None or self.threads >= 1, "threads", "an integer >= 1 or unset")
        check(self.bench_batch >= 1, "bench_batch", "an integer >= 1")
        check(self.bench_steps >= 1, "bench_steps", "an integer >= 1")
        from trials.models.registry import resolve_model  # the registry of variants (no torch)

        try:
            resolve_model(self.model, **self.model_overrides())
        except ConfigError as err:
            raise ConfigError(f"{where}{err}") from None


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(key: str, value, hint):
    """Check `value` against the field's type hint; ints are accepted where floats are expected."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if value is None:
        require(optional, f"{key} must be set (it cannot be empty)")
        return None
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if typing.get_origin(base) is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        require(ok, f"{key} must be a list of integers, got {value!r}")
        return tuple(value)
    if base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        require(ok, f"{key} must be a number, got {value!r}")
        return float(value)
    if base is int:
        require(isinstance(value, int) and not isinstance(value, bool), f"{key} must be an integer, got {value!r}")
        return value
    require(isinstance(value, base), f"{key} must be {_type_name(base)}, got {value!r}")
    return value


__all__ = ["DATASETS", "TrialConfig"]
