"""MLflow tracking of sweeps:

    tags.py            the names
    store.py           URIs, an unreachable, busy or full store, opening one, a new sqlite store created once
    tracker.py         SweepTracker: the one writer
    callback.py        Tune -> tracker (MlflowTrialLogger)
    system_metrics.py  a trial's system metrics
    export.py          a sweep's runs as typed rows
    history.py         earlier trials' speeds, read-only, for a plan
"""
