"""Tune's FIFO and ASHA schedulers, picking the next trial to run without a scan of every trial.

Tune asks its scheduler for a trial to run on every step of its event loop (about ten times per
trial), and FIFOScheduler.choose_trial_to_run (ASHA's too) walks the list of all trials from the
first: past every finished one, so each step costs more as the sweep goes on, and a sweep's total
grows with the square of its trials. These remember where the unfinished trials begin and look from
there: the same choice (the first PENDING trial in Tune's order, else the first PAUSED), at a cost
that does not grow.

The list only grows at its end, and a finished trial (TERMINATED, ERROR) is not run again within an
experiment: a retried trial is requeued at the end of the list before it can be chosen, and a
restored experiment is a new controller with a new list (where the position starts over).
"""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler


class _FromFirstUnfinished:
    """choose_trial_to_run from the first unfinished trial (see the module docstring)."""

    _trials = None  # the controller's list of trials
    _start = 0  # every trial before it has finished

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        trials = tune_controller.get_trials()
        if trials is not self._trials:
            self._trials, self._start = trials, 0
        while self._start < len(trials) and trials[self._start].is_finished():
            self._start += 1
        for status in (Trial.PENDING, Trial.PAUSED):
            for i in range(self._start, len(trials)):
                if trials[i].status == status:
                    return trials[i]
        return None

    def __getstate__(self):  # Tune pickles the scheduler with the Tuner: not the trials
        return {k: v for k, v in self.__dict__.items() if k not in ("_trials", "_start")}


class FifoScheduler(_FromFirstUnfinished, FIFOScheduler):
    pass


class AshaScheduler(_FromFirstUnfinished, ASHAScheduler):
    pass
