"""Training: run_trial, the optimiser and schedule, atomic checkpoints, progress output."""

from trials.train.loop import evaluate, measure_model, run_trial

__all__ = ["evaluate", "measure_model", "run_trial"]
