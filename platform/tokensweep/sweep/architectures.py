"""Architectures: what determines a trial's throughput, so that the bench measures each one once.

An architecture is the model (backbone + embedding), its input size, every knob of its embedding
(defaults included) and the precision it runs in; not the seed, the recipe or the data. Two trials
of one architecture get the same bench figures. The number of classes only sizes the head: the
bench uses the first trial's.

No Ray, MLflow or torch here (`trials.TrialConfig` resolves a model without torch).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Architecture:
    arch_id: str
    model: str  # vit_<backbone>_<embedding>
    img_size: int
    knobs: dict  # every knob of the embedding, JSON values (tuples as lists)
    precision: str  # the trials' setting: auto | fp32 | bf16 | fp16 (auto resolves on the bench device)
    num_classes: int
    threads: int | None  # the trials' torch threads: the bench times CPU steps with the same count
    bench_batch: int  # the trials' measurement batch
    label: str = ""  # readable: the model and what differs between the sweep's architectures

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Architecture":
        return cls(**data)

    def model_overrides(self) -> dict:
        """The `trials.create_model` overrides that build it."""
        return {"img_size": self.img_size, "num_classes": self.num_classes, **self.knobs}


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def classes_of(config) -> int:
    """The trial's classes where the config says (generated data, ImageNet-100); else the backbone's."""
    if config.dataset == "tiny":
        return config.tiny_classes
    if config.dataset == "imagenet100":
        return 100
    return config.spec.backbone.num_classes


def arch_key(config) -> dict:
    spec = config.spec
    knobs = {k: _jsonable(v) for k, v in sorted(spec.knobs.items())}
    return {"model": spec.name, "img_size": spec.img_size, "knobs": knobs, "precision": config.precision}


def arch_id_of(config) -> str:
    """The same for every trial whose model, input size, knobs and precision are the same."""
    return hashlib.sha256(json.dumps(arch_key(config), sort_keys=True).encode()).hexdigest()[:12]


def architecture_of(config) -> Architecture:
    key = arch_key(config)
    return Architecture(arch_id_of(config), key["model"], key["img_size"], key["knobs"], key["precision"],
                        classes_of(config), config.threads, config.bench_batch)  # fmt: skip


def distinct_architectures(configs) -> list[Architecture]:
    """One Architecture per distinct arch_id, in first-seen order, labelled by what differs between them."""
    archs: dict[str, Architecture] = {}
    for config in configs:
        arch = architecture_of(config)
        archs.setdefault(arch.arch_id, arch)
    return label_architectures(list(archs.values()))


def label_architectures(archs: list[Architecture]) -> list[Architecture]:
    """'vit_tiny_supertoken cluster_iters=1': the model, then each knob, size or precision that varies."""
    import dataclasses

    def varies(get) -> bool:
        return len({json.dumps(get(a), sort_keys=True) for a in archs}) > 1

    out = []
    for a in archs:
        parts = [a.model]
        same_model = [b for b in archs if b.model == a.model]
        for k in sorted(a.knobs):
            if len({json.dumps(b.knobs.get(k)) for b in same_model}) > 1:
                parts.append(f"{k}={_fmt(a.knobs[k])}")
        if varies(lambda b: b.img_size):
            parts.append(f"img_size={a.img_size}")
        if varies(lambda b: b.precision):
            parts.append(a.precision)
        out.append(dataclasses.replace(a, label=" ".join(parts)))
    return out


def _fmt(value) -> str:
    if isinstance(value, list):
        return "-".join(_fmt(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
