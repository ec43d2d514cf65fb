"""Readable trial names: a grid trial's from its values (an Optuna trial's: tokensweep.sweep.space)."""

from __future__ import annotations

from tokensweep.sweep.space import fmt_value



def auto_trial_name(values: dict, keys: list[str]) -> str:
    parts = [values["model"]]
    for k in keys:
        if k in ("model", "embedding", "backbone") or k not in values:
            continue
        parts.append(f"{k}={fmt_value(values[k])}")
    return "-".join(parts)
