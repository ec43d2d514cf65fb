"""Trials a resumed sweep leaves alone: those whose MLflow run is FINISHED with every epoch.

Tune's saved state lags what happened: it is written every few seconds, so a driver killed in between
resumes trials that had already finished (their last epochs, their end, even the trial itself may be
missing from it). MLflow knows better: a trial's run is FINISHED only after its last result was written
(the tracking callback's writes are kept in order). So on --resume, before Tune starts, the driver reads
the parent's finished trial runs (`FinishedTrials.read`), and
- the trainable (tokensweep.sweep.trainable) of such a trial reports the run's final metrics back to
  Tune at once - for Tune's record and its searcher - and returns: nothing is trained;
- the tracking callback (MlflowTrialLogger) writes nothing for it: its run is not set RUNNING again,
  its end time does not move.
A grid trial is known by its Tune trial id and by its variant (Tune may make a trial it lost again under
a new id); an Optuna trial by its trial id only. No Ray import: picklable, and carried to the trials
with `tune.with_parameters`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class FinishedTrials:
    final: dict  # trial id -> the final metrics its run holds (with "epoch": the last epoch logged)
    by_variant: dict  # grid variant index -> the trial id whose run finished it

    @classmethod
    def read(cls, tracker) -> FinishedTrials:
        """From the parent run's children (a SweepTracker whose parent_run_id is set)."""
        final, by_variant = {}, {}
        for run in tracker.finished_children():
            final[run.trial_id] = {**run.metrics, "epoch": run.epoch}
            if run.variant is not None:
                by_variant[run.variant] = run.trial_id
        return cls(final, by_variant)

    def lookup(self, trial_id: str, variant: int | None) -> dict | None:
        """The final metrics of the finished run this trial is, else None (the trial still has to run)."""
        if trial_id in self.final:
            return self.final[trial_id]
        if variant is not None and variant in self.by_variant:
            return self.final[self.by_variant[variant]]
        return None

    def __len__(self) -> int:
        return len(self.final)
