"""tokensweep: the sweep platform (CLI, Ray Tune scheduling, MLflow tracking, Optuna search).

Layering (checked by import-linter): tokensweep may import `trials` and `dashboards`;
neither of them imports tokensweep.
"""

__version__ = "0.1.0"
