"""trials: what one trial computes. Models, data, training and measurement; torch only.

    import trials
    model = trials.create_model("vit_s_supertoken", num_classes=100, cluster_iters=2)
    metrics = trials.run_trial(trials.TrialConfig.smoke())
"""

from trials.config import TrialConfig
from trials.errors import ConfigError, NonFiniteLoss
from trials.models import SuperTokenClustering, create_model, list_models, resolve_model
from trials.train import run_trial

__all__ = [
    "ConfigError",
    "NonFiniteLoss",
    "SuperTokenClustering",
    "TrialConfig",
    "create_model",
    "list_models",
    "resolve_model",
    "run_trial",
]
