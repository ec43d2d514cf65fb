"""TrialConfig: everything one trial needs, typed and validated in one place.

Flags, TOML files and sweep specs all become a plain dict, then `TrialConfig.from_dict`, the one
validation: unknown keys (the closest one suggested), wrong types and out-of-range values are a
one-line ConfigError whose `key` names the option. The dict is flat: `embedding` and `backbone` pick
the model within its family (vit_<backbone>_<embedding>), and the embedding's knobs (cluster_iters,
or a plugin's) sit beside the recipe's options. Defaults are the paper's recipe (Table 2 + DeiT);
`SMOKE` is the tiny CPU preset of `trial --smoke`, `run --smoke` and CI.
"""

import dataclasses
import functools
import hashlib
import json
import math
import os
import typing
from dataclasses import dataclass, field
from difflib import get_close_matches

from vocab.values import is_int
from trials.errors import ConfigError, require
from trials.models.backbones import BACKBONES
from trials.models.catalog import all_knobs, model_name, registered_embeddings, resolve_model, split_model_name
from trials.models.registry import reserve_names
from trials.models.spec import ModelSpec

DATASETS = ("tiny", "imagefolder", "imagenet100")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BAD_IMAGE_POLICIES = ("fail", "skip")
MODEL_PICKERS = ("backbone", "embedding")  # not fields: they pick `model` within its family
MAX_SEED = 2**32 - 1  # np.random.seed takes no more
MAX_DEFAULT_WORKERS = 4  # loader workers when unset: more than the usable CPUs makes PyTorch warn and oversubscribe
PAPER_EPOCHS = 300  # what the paper's recipe (the defaults) is made for
FEW_EPOCHS = PAPER_EPOCHS // 10  # below this, its regularisation keeps a trial from learning much
# The options that make the recipe (the epochs aside): the paper's are the defaults, the smoke preset's SMOKE.
RECIPE = ("batch_size", "lr", "weight_decay", "warmup_epochs", "min_lr", "clip_grad", "label_smoothing", "mixup",
          "cutmix", "mix_switch_prob", "randaugment", "random_erasing", "drop_path")  # fmt: skip

# Tiny data, the tiny backbone, no augmentation: learns above 2x chance in well under a minute on 2 cores.
SMOKE = dict(
    backbone="tiny",
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


def opt(default, help: str, **kw):
    """A TrialConfig field with its one-line help (the `tokensweep trial` flag's, and the docs')."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrialConfig:
    # --- model ---
    model: str = opt("vit_s_supertoken", "the model, vit_<backbone>_<embedding>", choices="models")
    img_size: int | None = opt(None, "input size in pixels, a multiple of 16", unset="the backbone's: 224, 32 for tiny")
    drop_path: float = opt(0.1, "stochastic depth rate of the last block")
    knobs: dict = field(default_factory=dict)  # the embedding's knobs that are set; flat keys in from_dict
    # --- data ---
    dataset: str = opt("tiny", "generated tiny data, any ImageFolder, or ImageNet-100 (a data_dir alone: imagefolder)", choices=DATASETS)
    data_dir: str | None = opt(None, "ImageFolder root with train/ and val/", unset="none: generated data")
    tiny_classes: int = opt(10, "classes of the generated data set")
    tiny_train_per_class: int = opt(200, "generated training images per class")
    tiny_val_per_class: int = opt(50, "generated validation images per class")
    randaugment: bool = opt(True, "RandAugment m9 on training images")
    random_erasing: float = opt(0.25, "random erasing probability")
    workers: int | None = opt(None, "data loader worker processes", unset=f"{MAX_DEFAULT_WORKERS}, or fewer on fewer CPUs")
    bad_images: str = opt("fail", "an undecodable file: fail the trial, or skip and count it", choices=BAD_IMAGE_POLICIES)
    # --- recipe (paper Table 2 and the DeiT recipe it builds on) ---
    epochs: int = opt(300, "training epochs")
    batch_size: int = opt(128, "images per step")
    lr: float = opt(1e-3, "peak learning rate (AdamW)")
    weight_decay: float = opt(0.05, "AdamW weight decay (none on norms, biases, position embeddings, class token)")
    warmup_epochs: float = opt(5.0, "linear warm-up epochs (longer than the run: half the run)")
    min_lr: float = opt(1e-5, "learning rate at the end of the cosine decay")
    clip_grad: float | None = opt(5.0, "gradient norm clip", unset="none: no clipping")
    label_smoothing: float = opt(0.1, "label smoothing")
    mixup: float = opt(0.8, "mixup alpha (0: off)")
    cutmix: float = opt(1.0, "cutmix alpha (0: off)")
    mix_switch_prob: float = opt(0.5, "probability of cutmix rather than mixup for a batch")
    seed: int = opt(0, "seed of initialisation, shuffling and augmentation")
    max_steps_per_epoch: int | None = opt(None, "cap on training steps per epoch", unset="none: the whole train split")
    # --- execution and measurement ---
    device: str = opt("auto", "where to train (auto: CUDA when there is a GPU)", choices=DEVICES)
    precision: str = opt("auto", "auto: bf16 autocast on CUDA, fp32 on CPU", choices=PRECISIONS)
    threads: int | None = opt(None, "CPU threads for torch", unset="torch's default")
    measure: bool = opt(True, "measure params, FLOPs and images/sec after the last epoch")
    bench_batch: int = opt(64, "batch of the throughput measurement")
    bench_steps: int = opt(10, "timed steps of the throughput measurement (their median counts)")
    gpu_shared: bool = opt(False, "set by the platform when trials share a GPU (throughput is then not comparable)")
    # --- resolved, not set: the model this config builds ---
    spec: ModelSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "knobs", dict(self.knobs))
        self.validate()

    @classmethod
    def smoke(cls, **overrides) -> "TrialConfig":
        """The SMOKE preset; `overrides` win (model="vit_tiny_patch", epochs=2, ...)."""
        return cls.from_dict({**SMOKE, **overrides})

    @classmethod
    def from_dict(cls, values: dict, where: str = "") -> "TrialConfig":
        """Validate and build from flat values; `where` prefixes error messages (e.g. 'trial.toml: ')."""
        try:
            model = cls.pick_model(values)
            values = {k: v for k, v in values.items() if k not in ("model", *MODEL_PICKERS)}
            options, knobs = cls._split_knobs(values)
            types = _field_types(cls)
            coerced = {k: _coerce(k, v, *types[k]) for k, v in options.items()}
            return cls(model=model, knobs=knobs, **coerced)
        except ConfigError as err:
            raise ConfigError(f"{where}{err}", err.key) from None

    @classmethod
    def pick_model(cls, values: dict) -> str:
        """The model `values` name: `model` (or the default), with `backbone` and `embedding` replacing its parts."""
        backbone, embedding = split_model_name(values.get("model", cls.model))
        picked = {"backbone": backbone, "embedding": embedding}
        for key, choices in (("backbone", list(BACKBONES)), ("embedding", list(registered_embeddings()))):
            if key in values:
                value = values[key]
                if value not in choices:
                    close = get_close_matches(str(value), choices, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ConfigError(f"unknown {key} {value!r}{hint}; choose one of: {', '.join(choices)}", key)
                picked[key] = value
        return model_name(picked["backbone"], picked["embedding"])

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """Every key from_dict takes: the options, `backbone` and `embedding`, every registered knob."""
        return cls._options() | set(MODEL_PICKERS) | set(all_knobs())

    @classmethod
    def _options(cls) -> frozenset[str]:
        return _option_names(cls)

    @classmethod
    def _split_knobs(cls, values: dict) -> tuple[dict, dict]:
        options = cls._options()
        knobs = all_knobs()
        plain, set_knobs = {}, {}
        for key, value in values.items():
            if key in options:
                plain[key] = value
            elif key in knobs:
                set_knobs[key] = value
            else:
                close = get_close_matches(key, sorted(options | set(knobs) | set(MODEL_PICKERS)), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown trial option {key!r}{hint}", key)
        return plain, set_knobs

    def to_dict(self) -> dict:
        """Flat values (knobs beside the options) that from_dict turns back into this config."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init and f.name != "knobs"}
        return {**out, **self.knobs}

    def replace(self, **changes) -> "TrialConfig":
        return TrialConfig.from_dict({**self.to_dict(), **changes})

    @property
    def warmup(self) -> float:
        """Warm-up epochs as trained: a warm-up longer than the run (the paper's 5 in a 2-epoch try) is cut
        to half the run, so the learning rate still decays."""
        return self.warmup_epochs if self.warmup_epochs <= self.epochs else self.epochs / 2

    @property
    def loader_workers(self) -> int:
        """`workers`, or when unset MAX_DEFAULT_WORKERS capped at the CPUs this process may run on."""
        if self.workers is not None:
            return self.workers
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(MAX_DEFAULT_WORKERS, usable)

    def recipe(self) -> str:
        """The recipe in words: the paper's, the smoke preset's, or the paper's with what differs from it."""
        paper = {f.name: f.default for f in dataclasses.fields(self) if f.name in RECIPE}
        changed = [k for k in RECIPE if getattr(self, k) != paper[k]]
        if not changed:
            return f"the paper's recipe (made for {PAPER_EPOCHS} epochs)"
        if all(getattr(self, k) == SMOKE.get(k, paper[k]) for k in RECIPE):
            return "the smoke recipe (no augmentation or mixing)"
        return "the paper's recipe with " + ", ".join(f"{k} {getattr(self, k)}" for k in changed)

    def notes(self) -> list[str]:
        """What this config does that its values do not say outright (callers print it once)."""
        notes = []
        if self.warmup < self.warmup_epochs:
            notes.append(f"warmup_epochs {self.warmup_epochs:g} is longer than epochs {self.epochs}: "
                         f"warming up over {self.warmup:g} epoch(s) instead, then cosine decay")  # fmt: skip
        if self.epochs < FEW_EPOCHS and (self.mixup > 0 or self.cutmix > 0 or self.randaugment):
            notes.append(f"the paper's recipe is made for {PAPER_EPOCHS} epochs: in {self.epochs}, its mixup, cutmix "
                         "and RandAugment can keep top-1 near chance; a short try learns with them off (mixup 0, "
                         "cutmix 0, no randaugment, as --smoke does)")  # fmt: skip
        return notes

    def params(self) -> dict:
        """What defines the trial, as its MLflow params (vocab's param names and every knob, resolved)."""
        spec = self.spec
        knobs = {k.name: k.format(spec.knobs[k.name]) for k in registered_embeddings()[spec.embedding].knobs}
        return {
            "model": self.model,
            "embedding": spec.embedding,
            "backbone": spec.backbone_name,
            **knobs,
            "img_size": spec.img_size,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seed": self.seed,
            "dataset": self.dataset,
        }

    def config_id(self) -> str:
        """The same for every seed of one configuration: a hash of everything but the seed."""
        values = {k: v for k, v in self.to_dict().items() if k != "seed"}
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=list).encode()).hexdigest()[:12]

    def validate(self) -> None:
        def check(ok: bool, key: str, rule: str) -> None:
            if not ok:  # the message only when it is needed: a big grid runs these checks 10,000s of times
                raise ConfigError(f"{key} must be {rule}, got {getattr(self, key)!r}", key)

        check(self.dataset in DATASETS, "dataset", f"one of {', '.join(DATASETS)}")
        if self.dataset != "tiny":
            require(self.data_dir is not None, f"data_dir must be set for dataset {self.dataset!r}", "data_dir")
            require(
                os.path.isdir(self.data_dir),
                f"data_dir {self.data_dir!r} does not exist or is not a directory "
                "(expected an ImageFolder root with train/ and val/)",
                "data_dir",
            )
        check(self.tiny_classes >= 2, "tiny_classes", "an integer >= 2")
        check(self.tiny_train_per_class >= 1, "tiny_train_per_class", "an integer >= 1")
        check(self.tiny_val_per_class >= 1, "tiny_val_per_class", "an integer >= 1")
        check(0 <= self.random_erasing <= 1, "random_erasing", "a probability in [0, 1]")
        check(self.workers is None or self.workers >= 0, "workers", "an integer >= 0 or unset")
        check(self.bad_images in BAD_IMAGE_POLICIES, "bad_images", f"one of {', '.join(BAD_IMAGE_POLICIES)}")
        check(1 <= self.epochs <= 10_000, "epochs", "an integer from 1 to 10000")
        check(1 <= self.batch_size <= 65_536, "batch_size", "an integer from 1 to 65536")
        check(0 < self.lr <= 10, "lr", "a number in (0, 10]")
        check(0 <= self.weight_decay <= 10, "weight_decay", "a number in [0, 10]")
        check(0 <= self.warmup_epochs <= 10_000, "warmup_epochs", "a number from 0 to 10000")
        check(0 <= self.min_lr <= self.lr, "min_lr", f"a number in [0, lr={self.lr}]")
        check(self.clip_grad is None or self.clip_grad > 0, "clip_grad", "a positive number or unset")
        check(0 <= self.label_smoothing < 1, "label_smoothing", "a number in [0, 1)")
        check(0 <= self.mixup < math.inf, "mixup", "a finite alpha >= 0 (0 turns mixup off)")
        check(0 <= self.cutmix < math.inf, "cutmix", "a finite alpha >= 0 (0 turns cutmix off)")
        check(0 <= self.mix_switch_prob <= 1, "mix_switch_prob", "a probability in [0, 1]")
        check(0 <= self.seed <= MAX_SEED, "seed", f"an integer from 0 to {MAX_SEED} (numpy's seed range)")
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
        spec = resolve_model(self.model, img_size=self.img_size, drop_path=self.drop_path, **self.knobs)
        object.__setattr__(self, "spec", spec)


reserve_names(f.name for f in dataclasses.fields(TrialConfig))  # a knob becomes a flag beside these


def require_full_batch(train_images: int, batch_size: int, split: str = "the train split") -> None:
    """ConfigError unless a train split of `train_images` holds one full batch (a trial trains on full ones)."""
    require(
        train_images >= batch_size,
        f"{split} has {train_images} images, fewer than batch_size={batch_size}: "
        "no full batch to train on; lower batch_size or add images",
        "batch_size",
    )


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


# What does not change between configs, read once: a big grid validates 10,000s of them.
@functools.cache
def _option_names(cls) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init and f.name != "knobs")


@functools.cache
def _field_types(cls) -> dict[str, tuple[type, bool]]:
    """Each option's (type, whether it may be None), from the field's type hint."""
    out = {}
    for key, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint)
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        out[key] = (base, type(None) in args)
    return out


def _coerce(key: str, value, base: type, optional: bool):
    """Check `value` against the field's type; ints are accepted where floats are expected."""
    # each message is made only when it is raised (a big grid coerces 10,000s of values)
    if value is None:
        if not optional:
            raise ConfigError(f"{key} must be set (it cannot be empty)", key)
        return None
    if base is float:
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise ConfigError(f"{key} must be a number, got {value!r}", key)
        return float(value)
    if base is int:
        if not is_int(value):
            raise ConfigError(f"{key} must be an integer, got {value!r}", key)
        return value
    if not isinstance(value, base):
        raise ConfigError(f"{key} must be {_type_name(base)}, got {value!r}", key)
    return value


__all__ = ["DATASETS", "SMOKE", "TrialConfig", "require_full_batch"]
