"""The model registry, timm-style but open: an embedding is a registration, a model is a backbone x an embedding.

    @register_embedding(knobs=[Knob("kernel", int, default=16, low=16, high=32, help="patch size")])
    def overlap_patch(img_size: int, dim: int, *, kernel: int = 16) -> nn.Module: ...

registers the models vit_tiny_overlap_patch, vit_ti_overlap_patch, vit_s_overlap_patch and
vit_b_overlap_patch (trials.models.backbones). The built-in three are registered the same way, in
trials.models.builtin; installed packages add theirs through the `tokensweep.embeddings` entry-point
group, and `load_plugin("module")` imports any other. `resolve_model(name, **overrides)` checks every
override against the declarations, once, before anything is built; none of this needs torch.
"""

import importlib
import importlib.metadata
import inspect
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from difflib import get_close_matches

from trials.errors import ConfigError, PluginError, require
from trials.models.backbones import BACKBONES
from trials.models.knobs import Knob, is_int, is_number
from trials.models.spec import PATCH, ModelSpec

ENTRY_POINT_GROUP = "tokensweep.embeddings"
EMBEDDING_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MODEL_OPTIONS = ("num_classes", "img_size", "drop_path")  # every model takes these besides its knobs
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
_loaded = False  # built-ins and entry points, on first use
_version = 0  # registrations so far
_knobs: tuple = (None, -1, types.MappingProxyType({}))  # all_knobs(), of (the registry dict, its _version)


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
    taken = sorted(set(names) & _reserved_names())
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


def _reserved_names() -> set[str]:
    import dataclasses

    from trials.config import TrialConfig  # imported here: trials.config itself uses this registry

    return {f.name for f in dataclasses.fields(TrialConfig)} | set(NOT_KNOB_NAMES)


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


# --- loading -------------------------------------------------------------------------------------------


def registered_embeddings() -> dict[str, Embedding]:
    """Every registered embedding: the built-ins, installed entry points, and plugins loaded so far."""
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("trials.models.builtin")
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            load_plugin(entry.module, origin=f"entry point {entry.name!r} ({ENTRY_POINT_GROUP})")
    return _EMBEDDINGS


def load_plugin(module: str, origin: str | None = None) -> list[str]:
    """Import a user's module of embeddings; return the names it registered. One-line PluginError on failure."""
    registered_embeddings()
    origin = origin or f"plugin {module!r}"
    before = {name: emb.module for name, emb in _EMBEDDINGS.items()}
    try:
        importlib.import_module(module)
    except PluginError as err:
        raise PluginError(f"{origin}: {err}") from None
    except ModuleNotFoundError as err:
        if err.name and module.startswith(err.name):
            raise PluginError(f"{origin}: no module named {err.name!r} (install it, or put its folder on PYTHONPATH)") from None
        raise PluginError(f"{origin} failed to import: {err}") from None
    except Exception as err:  # the user's code: its error, in one line
        raise PluginError(f"{origin} failed to import: {type(err).__name__}: {err}".replace("\n", " ")) from None
    except SystemExit as exit_:  # even exit code 0: nothing the command was asked to do has run
        raise PluginError(f"{origin} exited while being imported (sys.exit({exit_.code!r})); a plugin module "
                          "must only define and register embeddings") from None  # fmt: skip
    mine = sorted(n for n, e in _EMBEDDINGS.items() if e.module == module or e.module.startswith(module + "."))
    if not mine and before == {n: e.module for n, e in _EMBEDDINGS.items()}:
        raise PluginError(f"{origin} registered no embedding (decorate a builder with @register_embedding)")
    return mine


# --- models ----------------------------------------------------------------------------------------------


def model_name(backbone: str, embedding: str) -> str:
    return f"vit_{backbone}_{embedding}"


def list_models() -> list[str]:
    return sorted(model_name(b, e) for b in BACKBONES for e in registered_embeddings())


def split_model_name(name) -> tuple[str, str]:
    """'vit_s_overlap_patch' -> ('s', 'overlap_patch'); ConfigError(key='model') for an unknown model."""
    prefix, _, rest = str(name).partition("_")
    backbone, _, embedding = rest.partition("_")
    if prefix != "vit" or backbone not in BACKBONES or embedding not in registered_embeddings():
        close = get_close_matches(str(name), list_models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; choose one of: {', '.join(list_models())}", "model")
    return backbone, embedding


def all_knobs() -> Mapping[str, Knob]:
    """Every knob name of every embedding (a shared name has one type; its first declaration).

    Read-only, and computed once per set of registered embeddings: validation asks for it several
    times per trial, 10,000s of times for a big grid."""
    global _knobs
    embeddings = registered_embeddings()
    of, version, knobs = _knobs  # `of` held, not its id: a dict swapped in (tests do) is never mistaken for it
    if of is not embeddings or version != _version:
        merged: dict[str, Knob] = {}
        for emb in embeddings.values():
            for knob in emb.knobs:
                merged.setdefault(knob.name, knob)
        knobs = types.MappingProxyType(merged)
        _knobs = (embeddings, _version, knobs)
    return knobs


def knob_owners(name: str) -> list[str]:
    """The embeddings that declare knob `name`."""
    return [e.name for e in registered_embeddings().values() if e.knob(name) is not None]


def resolve_model(name: str, **overrides) -> ModelSpec:
    """The ModelSpec `create_model(name, **overrides)` would build; ConfigError(key=...) on bad input.

    An override of None means "the model's default".
    """
    backbone_name, emb_name = split_model_name(name)
    emb = registered_embeddings()[emb_name]
    backbone = BACKBONES[backbone_name]
    knobs, img_size = emb.defaults(backbone_name), backbone.img_size
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "num_classes":
            require(is_int(value) and value >= 2, f"num_classes must be an integer >= 2, got {value!r}", key)
            backbone = replace(backbone, num_classes=value)
        elif key == "drop_path":
            require(is_number(value) and 0 <= value < 1, f"drop_path must be a number in [0, 1), got {value!r}", key)
            backbone = replace(backbone, drop_path=float(value))
        elif key == "img_size":
            ok = is_int(value) and value >= PATCH and value % PATCH == 0
            require(ok, f"img_size must be a positive multiple of {PATCH} (e.g. 32, 224), got {value!r}", key)
            img_size = value
        elif (knob := emb.knob(key)) is not None:
            try:
                knobs[key] = knob.check(value)
            except ConfigError as err:
                raise ConfigError(f"{err} ({emb_name} embedding)", key) from None
        else:
            takes = ", ".join(sorted([*MODEL_OPTIONS, *(k.name for k in emb.knobs)]))
            raise ConfigError(f"model {name!r} ({emb_name} embedding) has no option {key!r}; it takes: {takes}", key)
    return ModelSpec(name, emb_name, backbone_name, backbone, img_size, knobs)
