"""A timm-style model registry: one small function per variant returning its ModelSpec;
`resolve_model(name, **overrides)` is what trials.models.factory.create_model builds.

Every override is checked here, once, before anything is built, so that the CLI, a sweep spec
and a direct call all get the same one-line error for the same bad value. No torch here: a spec
is validated before torch loads.
"""

from collections.abc import Callable
from dataclasses import replace
from difflib import get_close_matches

from trials.errors import ConfigError, require
from trials.models.spec import DEFAULT_CHANNELS, MAX_CONV_DEPTH, PATCH, ModelSpec

EMBEDDINGS = ("patch", "conv", "supertoken")
MAX_CLUSTER_ITERS = 16
MAX_CHANNEL_WIDTH = 1024

_COMMON = {"num_classes", "img_size", "drop_path"}
_SUPERTOKEN = {"conv_depth", "extra_conv", "cluster_iters", "channels", "mask_border"}


_REGISTRY: dict[str, Callable[[], ModelSpec]] = {}


def register_model(fn: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
    """Register a function returning a variant's ModelSpec under the function's name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_value(key: str, value) -> object:
    """Validate one override; return it normalised (channels as a tuple)."""
    if key == "num_classes":
        require(_is_int(value) and value >= 2, f"num_classes must be an integer >= 2, got {value!r}")
    elif key == "img_size":
        require(
            _is_int(value) and value >= PATCH and value % PATCH == 0,
            f"img_size must be a positive multiple of {PATCH} (e.g. 32, 224), got {value!r}",
        )
    elif key == "drop_path":
        require(
            isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1,
            f"drop_path must be a number in [0, 1), got {value!r}",
        )
    elif key == "conv_depth":
        require(
            _is_int(value) and 0 <= value <= MAX_CONV_DEPTH,
            f"conv_depth must be an integer from 0 to {MAX_CONV_DEPTH}, got {value!r}",
        )
    elif key in ("extra_conv", "mask_border"):
        require(isinstance(value, bool), f"{key} must be true or false, got {value!r}")
    elif key == "cluster_iters":
        require(
            _is_int(value) and 1 <= value <= MAX_CLUSTER_ITERS,
            f"cluster_iters must be an integer from 1 to {MAX_CLUSTER_ITERS}, got {value!r}",
        )
    elif key == "channels":
        ok = isinstance(value, (list, tuple)) and len(value) == len(DEFAULT_CHANNELS)
        ok = ok and all(_is_int(c) and 1 <= c <= MAX_CHANNEL_WIDTH for c in value)
        require(
            ok,
            f"channels must be {len(DEFAULT_CHANNELS)} integer widths from 1 to {MAX_CHANNEL_WIDTH} "
            f"(default {','.join(map(str, DEFAULT_CHANNELS))}), got {value!r}",
        )
        return tuple(value)
    return value


def resolve_model(name: str, **overrides) -> ModelSpec:
    """The ModelSpec `create_model(name, **overrides)` would build; raises ConfigError on bad input.

    An override of None means "the variant's default".
    """
    if name not in _REGISTRY:
        close = get_close_matches(str(name), list_models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; choose one of: {', '.join(list_models())}")
    spec = _REGISTRY[name]()
    allowed = _COMMON | (_SUPERTOKEN if spec.embedding == "supertoken" else set())
    backbone, fields = spec.backbone, {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in allowed:
            raise ConfigError(
                f"model {name!r} ({spec.embedding} embedding) has no option {key!r}; "
                f"it takes: {', '.join(sorted(allowed))}"
            )
        value = _check_value(key, value)
        if key in ("num_classes", "drop_path"):
            backbone = replace(backbone, **{key: value})
        else:
            fields[key] = value
    return replace(spec, backbone=backbone, **fields)
