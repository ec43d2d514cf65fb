"""MLflow tracking of sweeps: tags.py (the names), tracker.py (the one writer), tune_callback.py (Tune ->
tracker), outage.py and store.py (an unreachable, busy or full store; opening one), sqlite_store.py (a new sqlite
store created once, checked before Ray), system_metrics.py, export.py, uris.py."""
