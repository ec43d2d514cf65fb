"""trials: what one trial computes. Models, data, training and measurement; torch only.

    import trials
    model = trials.create_model("vit_s_supertoken", num_classes=100, cluster_iters=2)
    metrics = trials.run_trial(trials.TrialConfig.smoke())

Public names load on first use (PEP 562), so `trials.errors` and `trials.config` import without
torch and the CLI answers --help and bad input at once.
"""

import importlib

_PUBLIC = {
    "ConfigError": "trials.errors",
    "NonFiniteLoss": "trials.errors",
    "TrialConfig": "trials.config",
    "SuperTokenClustering": "trials.models",
    "create_model": "trials.models",
    "list_models": "trials.models",
    "resolve_model": "trials.models",
    "run_trial": "trials.train",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'trials' has no attribute {name!r}")
