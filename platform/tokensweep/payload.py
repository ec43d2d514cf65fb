"""What Tune carries to a trial's worker (TrialPayload, Platform, SearchSettings), encoded and decoded.

What Tune carries for a trial, typed: a trial's config is encoded into Tune's (a plain dict, saved in
Tune's experiment state) and decoded back in the trial's worker and by the driver's callback.

    grid:    {"variant": name, "index": i, "trial": {values}, "_platform": {...}}   (one trial's own values)
    optuna:  {"trial": {base values}, "_platform": {...}, "optuna_trial_number": n, "<key>": value, ...}

No Ray here: validation (which checks Optuna ranges with `apply_search_values`) imports it too.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass


# keys of a Tune config that are not Optuna suggestions
RESERVED = ("variant", "index", "trial", "_platform", "optuna_trial_number")
# an Optuna key for one element of a tuple knob: "channels[2]"
INDEXED = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*)\[(?P<index>\d+)\]$")


@dataclass(frozen=True)
class SearchSettings:
    """What a search trial's worker needs to measure its objective; carried in Tune's config as JSON."""

    sweep: str  # the sweep's parent run id: names the node's locks and figures
    isolated: bool  # False where trials share a GPU
    batch: int | None  # [bench]: None, the trials' bench_batch
    repeats: int
    steps: int

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> "SearchSettings | None":
        return None if data is None else cls(**data)


@dataclass(frozen=True)
class Platform:
    """What every trial's worker needs from the driver besides its values."""

    tracking_uri: str  # without user:password (tokensweep.tracking.store.credentials_to_environment)
    experiment: str
    system_metrics: bool
    system_metrics_interval_s: float
    objectives: tuple[str, ...]
    plugins: tuple[str, ...] = ()
    search_throughput: SearchSettings | None = None  # an Optuna search's throughput objective

    def encode(self) -> dict:
        throughput = self.search_throughput.to_json() if self.search_throughput is not None else None
        return {**self.__dict__, "objectives": list(self.objectives), "plugins": list(self.plugins),
                "search_throughput": throughput}  # fmt: skip

    @classmethod
    def decode(cls, data: dict) -> "Platform":
        return cls(**{**data, "objectives": tuple(data["objectives"]), "plugins": tuple(data.get("plugins", ())),
                      "search_throughput": SearchSettings.from_json(data.get("search_throughput"))})  # fmt: skip


@dataclass(frozen=True)
class TrialPayload:
    """One trial as Tune carries it: its values and where they came from."""

    values: dict  # the TrialConfig values it runs
    platform: Platform
    variant: str | None = None  # grid: the trial's name
    index: int | None = None  # grid: its place in the spec's variants
    optuna_number: int | None = None
    search: dict | None = None  # optuna: its suggestions

    @property
    def name(self) -> str:
        if self.variant is not None:
            return self.variant
        prefix = f"t{self.optuna_number:03d}" if self.optuna_number is not None else "trial"
        return f"{prefix}-{search_trial_name(self.search or {})}"

    @classmethod
    def decode(cls, config: dict) -> "TrialPayload":
        platform = Platform.decode(config["_platform"])
        if "variant" in config:
            return cls(dict(config["trial"]), platform, variant=config["variant"], index=config.get("index"))
        search = {k: v for k, v in config.items() if k not in RESERVED}
        number = config.get("optuna_trial_number")
        return cls(apply_search_values(config["trial"], search), platform, optuna_number=number, search=search)


def variant_index(config: dict) -> int | None:
    """A grid trial's place in the spec's variants (None for a search trial), without decoding the rest."""
    return config.get("index") if "variant" in config else None


def search_trial_name(search_values: dict) -> str:
    """A readable name for an Optuna trial from its suggested values ("channels=8-16-16-32-32-32,lr=0.001")."""
    indexed: dict[str, dict[int, object]] = {}
    plain = []
    for k, v in search_values.items():
        if m := INDEXED.match(k):
            indexed.setdefault(m["key"], {})[int(m["index"])] = v
        else:
            plain.append(f"{k}={fmt_value(round(v, 6) if isinstance(v, float) else v)}")
    parts = [f"{root}=" + "-".join(fmt_value(items[i]) for i in sorted(items)) for root, items in indexed.items()]
    return ",".join(parts + plain) or "trial"


def fmt_value(value) -> str:
    """A value as it reads in a trial name: lists joined by -, booleans as true/false."""
    if isinstance(value, (list, tuple)):
        return "-".join(fmt_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def grid_config(index: int, name: str, values: dict, platform: Platform) -> dict:
    return {"variant": name, "index": index, "trial": values, "_platform": platform.encode()}


def search_base_config(values: dict, platform: Platform) -> dict:
    return {"trial": values, "_platform": platform.encode()}


def apply_search_values(base: dict, suggestions: dict) -> dict:
    """Merge Optuna's suggestions into the base trial values; `channels[i]` sets one element of a tuple knob."""
    out = dict(base)
    indexed: dict[str, dict[int, object]] = {}
    for key, value in suggestions.items():
        if m := INDEXED.match(key):
            indexed.setdefault(m["key"], {})[int(m["index"])] = value
        else:
            out[key] = value
    if indexed:
        from trials import TrialConfig, resolve_model

        defaults = resolve_model(TrialConfig.pick_model(out)).knobs
        for root, items in indexed.items():
            current = list(out.get(root) or defaults[root])
            for i, v in items.items():
                current[i] = int(v) if isinstance(v, float) and v.is_integer() else v
            out[root] = current
    return out
