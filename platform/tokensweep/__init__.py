"""tokensweep: the sweep platform (CLI, Ray Tune scheduling, MLflow tracking, Optuna search).

    cli.py      the `tokensweep` console script
    plugins.py  loading the modules that register users' own embeddings
    errors.py   SpecError, the platform's user-input error
    payload.py  what Tune carries to a trial's worker (no Ray: spec validation uses it too)
    plan.py     what a sweep will cost (device-hours, wall time) from calibrated speeds; no Ray
    commands/   one module per subcommand
    spec/       what was asked for: a sweep spec TOML -> a validated SweepSpec
    sweep/      what runs where: the sweep on Ray Tune, its trials, the bench
    tracking/   what gets recorded: MLflow

Layering (checked by import-linter): tokensweep may import `trials` and `dashboards`;
neither of them imports tokensweep.
"""

__version__ = "0.1.0"
