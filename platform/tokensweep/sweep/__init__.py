"""The sweep: a validated SweepSpec run on Ray Tune (driver.run_sweep), its trials in Ray workers (trainable).

    options.py      RunOptions (what the command line decided) and SweepOutcome
    space.py        what Tune carries per trial, encoded and decoded (no Ray: validation uses it too)
    searchers.py    the grid as a Tune searcher (one trial's values at a time), Optuna, ASHA
    budget.py       device-hours: each trial's cost and plan, the budget the grid's searcher holds to
    optuna_links.py the Optuna study's objective names, each Optuna trial linked to its MLflow run
    progress.py     what `tokensweep run` prints while it runs (the compact view), Tune's result files
    storage.py      where Tune keeps the sweep, and whether it may start, resume or start over
    ray_session.py  starting or joining Ray
    driver.py       run_sweep: the phases, the MLflow parent run, the summary
    lock.py         one driver per sweep: a lock naming its holder, beside the sweep's Tune folder
    signals.py      Ctrl-C and SIGTERM to the driver: the sweep stops in order, runs closed, exit 130/143
    finished.py     a resumed sweep's finished trials (from MLflow): neither run nor touched again
    tune_state.py   Tune's restored state against its storage (checkpoints deleted since the snapshot)
    ray_logs.py     Ray's log records whose traceback one line says better
    trainable.py    train_trial: what runs in a trial's worker
    checkpoints.py  which checkpoint a trial continues from (the newest that loads, if Tune's does not)
    worker_signals.py  SIGTERM in a trial's worker: it ends quietly

Importing this package imports nothing else; driver.py imports Ray and MLflow.
"""
