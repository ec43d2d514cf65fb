"""Readable trial names: a grid trial's from its values, an Optuna trial's from its suggestions."""

from __future__ import annotations

from tokensweep.spec.model import INDEXED


def fmt_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(fmt_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def auto_trial_name(values: dict, keys: list[str]) -> str:
    parts = [values["model"]]
    for k in keys:
        if k in ("model", "embedding") or k not in values:
            continue
        parts.append(f"{k}={fmt_value(values[k])}")
    return "-".join(parts)


def search_trial_name(search_values: dict) -> str:
    """A readable name for an Optuna trial from its suggested values."""
    parts = []
    chans = {int(INDEXED.match(k)["index"]): v for k, v in search_values.items() if INDEXED.match(k)}
    if chans:
        parts.append("channels=" + "-".join(fmt_value(chans[i]) for i in sorted(chans)))
    for k, v in search_values.items():
        if not INDEXED.match(k):
            parts.append(f"{k}={fmt_value(round(v, 6) if isinstance(v, float) else v)}")
    return ",".join(parts) or "trial"
