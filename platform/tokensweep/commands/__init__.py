"""The subcommands of `tokensweep`, one module each (tokensweep.cli registers them):

    trial.py  params.py  bench.py  data.py  plan.py  run.py  export.py  dashboard.py  report.py

trial.py also derives TrialConfig's command-line flags from its declarations.
"""
