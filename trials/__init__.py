"""trials: what one trial computes. Models, data, training and measurement; torch only.

    import trials
    model = trials.create_model("vit_s_supertoken", num_classes=100, cluster_iters=2)
    metrics = trials.run_trial(trials.TrialConfig.smoke())

Importing `trials` loads no torch: the config, the model registry and the errors are plain Python, so the
CLI answers --help and validates input at once. `create_model` and `run_trial` load torch when called.
"""

from trials.config import SMOKE, TrialConfig
from trials.errors import ConfigError, NonFiniteLoss, PluginError
from trials.models.knobs import Knob
from trials.models.catalog import list_models, load_plugin, resolve_model
from trials.models.registry import register_embedding


def create_model(name: str, **overrides):
    """Build a registered model (see trials.models.factory.create_model)."""
    from trials.models.factory import create_model as create

    return create(name, **overrides)


def run_trial(config, report=None, resume_from=None, checkpoint_dir=None, progress=True, log_path=None, step_guard=None) -> dict:
    """Train and evaluate one model; return the final metrics (see trials.train.loop.run_trial)."""
    from trials.train.loop import run_trial as run

    return run(config, report, resume_from, checkpoint_dir, progress, log_path, step_guard)


def __getattr__(name: str):
    """Torch-backed public names, loaded on first use so `import trials` stays torch-free."""
    if name == "SuperTokenClustering":
        from trials.models.clustering import SuperTokenClustering

        return SuperTokenClustering
    raise AttributeError(f"module 'trials' has no attribute {name!r}")


__all__ = [
    "SMOKE",
    "ConfigError",
    "Knob",
    "NonFiniteLoss",
    "PluginError",
    "SuperTokenClustering",
    "TrialConfig",
    "create_model",
    "list_models",
    "load_plugin",
    "register_embedding",
    "resolve_model",
    "run_trial",
]
