"""MLflow tracking of sweeps: tags.py (the names), tracker.py (the one writer), tune_callback.py (Tune ->
tracker), outage.py and store.py (an unreachable or busy store), system_metrics.py, export.py, uris.py."""
