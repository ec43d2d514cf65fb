"""The embedding registry, timm-style but open: an embedding is a registration, a model is a backbone x an embedding.

    @register_embedding(knobs=[Knob("kernel", int, default=16, low=16, high=32, help="patch size")])
    def overlap_patch(img_size: int, dim: int, *, kernel: int = 16) -> nn.Module: ...

registers the models vit_tiny_overlap_patch, vit_ti_overlap_patch, vit_s_overlap_patch and
vit_b_overlap_patch (trials.models.backbones). Here: the declaration, its checks and the store. The
built-in three are registered the same way, in trials.models.builtin; trials.models.catalog loads
them, installed entry points and plugins, and looks models up by name. None of this needs torch.
"""

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trials.errors import PluginError
from trials.models.backbones import BACKBONES
from trials.models.knobs import Knob

EMBEDDING_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
NOT_KNOB_NAMES = ("model", "embedding", "backbone", "num_classes")  # with TrialConfig's fields: taken


@dataclass(frozen=True)
class Embedding:
    """A registered embedding: its builder, its knobs and where it came from."""

    name: str
    build: Callable  # (img_size, dim, **knobs) -> module mapping (B, 3, S, S) to (B, (S/16)**2, dim)
    knobs: tuple[Knob, ...]
    backbone_defaults: dict = field(default_factory=dict)  # backbone -> {knob: default there}
    module: str = ""
    doc: str = ""

    def knob(self, name: str) -> Knob | None:
        return next((k for k in self.knobs if k.name == name), None)

    def defaults(self, backbone: str) -> dict:
        return {k.name: k.default for k in self.knobs} | dict(self.backbone_defaults.get(backbone, {}))

    @property
    def builtin(self) -> bool:
        return self.module == "trials.models.builtin"


_EMBEDDINGS: dict[str, Embedding] = {}
_version = 0  # registrations so far
# Knob names a registration may not take. trials.config adds TrialConfig's fields when it is imported,
# which the `trials` package does before any of its modules can register.
_TAKEN_NAMES: set[str] = set(NOT_KNOB_NAMES)


def reserve_names(names: Iterable[str]) -> None:
    """Refuse these names as knobs from now on: they are trial options (a knob becomes a flag beside them)."""
    _TAKEN_NAMES.update(names)


def registered() -> tuple[dict[str, Embedding], int]:
    """The store as it stands, name -> Embedding (the dict itself), and the registrations made so far."""
    return _EMBEDDINGS, _version


def register_embedding(knobs=(), *, name: str | None = None, backbone_defaults: dict | None = None):
    """Decorator: register `fn(img_size, dim, *, **knobs) -> nn.Module` as an embedding (see the module doc).

    Each knob must be a keyword-only parameter of `fn` with the knob's default. `backbone_defaults`
    gives other defaults on some backbones, e.g. {"tiny": {"channels": (8, 16, 16, 32, 32, 32)}}.
    """
    knobs = tuple(knobs)

    def decorate(fn):
        embedding = Embedding(
            name=name or getattr(fn, "__name__", ""),
            build=fn,
            knobs=knobs,
            backbone_defaults={b: dict(d) for b, d in (backbone_defaults or {}).items()},
            module=getattr(fn, "__module__", ""),
            doc=inspect.getdoc(fn) or "",
        )
        _check_declaration(embedding)
        _add(embedding)
        return fn

    return decorate


def _check_declaration(emb: Embedding) -> None:
    def bad(why: str) -> PluginError:
        return PluginError(f"embedding {emb.name!r} ({emb.module}): {why}")

    if not EMBEDDING_NAME.match(emb.name):
        raise bad("the name must be lower-case letters, digits and _ (it becomes vit_<backbone>_<name>)")
    if not all(isinstance(k, Knob) for k in emb.knobs):
        raise bad("knobs must be a list of trials.plugins.Knob")
    names = [k.name for k in emb.knobs]
    if len(set(names)) != len(names):
        raise bad(f"a knob is declared twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    taken = sorted(set(names) & _TAKEN_NAMES)
    if taken:
        raise bad(f"knob {taken[0]!r} is already a trial option; choose another name")
    try:
        params = inspect.signature(emb.build).parameters
    except (TypeError, ValueError):
        raise bad("is not a function") from None
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 2:
        raise bad("the builder must take (img_size, dim, *, <one keyword per knob>)")
    for knob in emb.knobs:
        param = params.get(knob.name)
        if param is None or param.kind != param.KEYWORD_ONLY:
            raise bad(f"knob {knob.name!r} is not a keyword-only parameter of the builder (after *)")
        if _normal(param.default) != knob.default:
            raise bad(f"knob {knob.name!r} has default {knob.default!r}, the builder {param.default!r}: make them equal")
    extra = [p.name for p in params.values() if p.kind == p.KEYWORD_ONLY and p.name not in names]
    if extra:
        raise bad(f"builder parameter {extra[0]!r} has no Knob: declare it in knobs=[...]")
    for backbone, defaults in emb.backbone_defaults.items():
        if backbone not in BACKBONES:
            raise bad(f"backbone_defaults names an unknown backbone {backbone!r}; backbones: {', '.join(BACKBONES)}")
        for key, value in defaults.items():
            knob = emb.knob(key)
            if knob is None:
                raise bad(f"backbone_defaults[{backbone!r}] sets {key!r}, which is not one of its knobs")
            defaults[key] = knob.check(value)


def _normal(value):
    return tuple(value) if isinstance(value, list) else value


def _add(emb: Embedding) -> None:
    old = _EMBEDDINGS.get(emb.name)
    if old is not None and (old.module, old.build.__qualname__) != (emb.module, emb.build.__qualname__):
        where = "a built-in" if old.builtin else f"the one from {old.module}"
        raise PluginError(
            f"embedding {emb.name!r} from {emb.module} collides with {where}: "
            "choose another name (register_embedding(name=...))"
        )
    for other in _EMBEDDINGS.values():
        for knob in emb.knobs:
            theirs = other.knob(knob.name)
            if other.name != emb.name and theirs is not None and theirs.type is not knob.type:
                raise PluginError(
                    f"embedding {emb.name!r}: knob {knob.name!r} is a {knob.type.__name__} here but a "
                    f"{theirs.type.__name__} in embedding {other.name!r} (one flag serves both): rename it"
                )
    global _version
    _EMBEDDINGS[emb.name] = emb
    _version += 1
