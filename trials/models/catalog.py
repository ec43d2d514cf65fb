"""The models by name: the registered embeddings x the backbones (trials.models.backbones).

`registered_embeddings()` loads, on first use, the built-in embeddings (trials.models.builtin) and
those of installed packages (the `tokensweep.embeddings` entry-point group); `load_plugin("module")`
imports any other. `resolve_model(name, **overrides)` checks every override against the
declarations, once, before anything is built; none of this needs torch.
"""

import importlib
import importlib.metadata
import types
from collections.abc import Mapping
from dataclasses import replace
from difflib import get_close_matches

from vocab.values import is_int, is_number
from trials.errors import ConfigError, PluginError, require
from trials.models.backbones import BACKBONES
from trials.models.knobs import Knob
from trials.models.registry import Embedding, registered
from trials.models.spec import PATCH, ModelSpec

ENTRY_POINT_GROUP = "tokensweep.embeddings"
MODEL_OPTIONS = ("num_classes", "img_size", "drop_path")  # every model takes these besides its knobs

_loaded = False  # built-ins and entry points, on first use
_knobs: tuple = (None, -1, types.MappingProxyType({}))  # all_knobs(), of (the registry dict, its version)


def registered_embeddings() -> dict[str, Embedding]:
    """Every registered embedding: the built-ins, installed entry points, and plugins loaded so far."""
    global _loaded
    if not _loaded:
        _loaded = True
        from trials.models import builtin  # noqa: F401  (registers on import, after trials.config reserved its names)

        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            load_plugin(entry.module, origin=f"entry point {entry.name!r} ({ENTRY_POINT_GROUP})")
    return registered()[0]


def load_plugin(module: str, origin: str | None = None) -> list[str]:
    """Import a user's module of embeddings; return the names it registered. One-line PluginError on failure."""
    embeddings = registered_embeddings()
    origin = origin or f"plugin {module!r}"
    before = {name: emb.module for name, emb in embeddings.items()}
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
    mine = sorted(n for n, e in embeddings.items() if e.module == module or e.module.startswith(module + "."))
    if not mine and before == {n: e.module for n, e in embeddings.items()}:
        raise PluginError(f"{origin} registered no embedding (decorate a builder with @register_embedding)")
    return mine


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
    _, registrations = registered()
    of, version, knobs = _knobs  # `of` held, not its id: a dict swapped in (tests do) is never mistaken for it
    if of is not embeddings or version != registrations:
        merged: dict[str, Knob] = {}
        for emb in embeddings.values():
            for knob in emb.knobs:
                merged.setdefault(knob.name, knob)
        knobs = types.MappingProxyType(merged)
        _knobs = (embeddings, registrations, knobs)
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
