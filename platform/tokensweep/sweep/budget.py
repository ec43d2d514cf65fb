"""A sweep's device-hours: what each trial cost, what the plan said, and the budget that holds them.

`TrialCost` is what the driver knows of the plan (tokensweep.plan): each trial's planned device-hours
and the devices a trial holds. `BudgetGate` decides, before the grid's searcher hands out a trial,
whether it may start: not once the hours spent plus the running trials' (each the larger of its plan
and what it has run so far) plus its own plan would pass [sweep] budget_hours. `GridSearch` keeps a budget-stopped grid resumable: Tune saves
a searcher that said it was finished as finished, and a resumed sweep with a larger budget must go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ray.tune.search import SearchGenerator

from tokensweep.sweep.tuner import GridSearcher

HOUR_S = 3600.0


@dataclass
class TrialCost:
    devices: float  # GPUs a trial holds, or its cores on CPU
    planned: dict = field(default_factory=dict)  # trial name -> planned device-hours
    wall_s: float | None = None  # the plan's wall time of the sweep
    default_h: float = 0.0  # a trial the plan has no row for (a search's): the plan's mean

    def planned_hours(self, name: str) -> float:
        return self.planned.get(name, self.default_h)

    def hours(self, seconds: float) -> float:
        return seconds * self.devices / HOUR_S


@dataclass
class BudgetGate:
    budget_h: float | None
    cost: TrialCost
    spent_h: float = 0.0  # trials ended, this session and those before (the searcher's saved state)
    running: dict = field(default_factory=dict)  # trial_id -> (name, started at)
    not_started: list = field(default_factory=list)  # names refused for the budget

    def running_h(self, now: float | None = None) -> float:
        """The running trials' hours: spent so far plus their plan's remaining estimate (an overrun: spent)."""
        now = time.time() if now is None else now
        return sum(max(self.cost.planned_hours(name), self.cost.hours(now - t0)) for name, t0 in self.running.values())

    def allows(self, name: str, now: float | None = None) -> bool:
        if self.budget_h is None:
            return True
        return self.spent_h + self.running_h(now) + self.cost.planned_hours(name) <= self.budget_h

    def started(self, trial_id: str, name: str, now: float | None = None) -> None:
        self.running[trial_id] = (name, time.time() if now is None else now)

    def ended(self, trial_id: str, now: float | None = None) -> None:
        if trial_id in self.running:
            _, t0 = self.running.pop(trial_id)
            self.spent_h += self.cost.hours((time.time() if now is None else now) - t0)

    def summary(self) -> str | None:
        """One line for the sweep's end when the budget left trials unstarted; None otherwise."""
        if not self.not_started:
            return None
        return (f"budget: {self.spent_h:.3g} of {self.budget_h:g} device-hours spent; "
                f"{len(self.not_started)} trial(s) not started: {', '.join(self.not_started)}")  # fmt: skip


class GridSearch(SearchGenerator):
    """Tune's SearchGenerator, except that a restored one is never finished: the grid's searcher says
    whether trials are left (those a budget stopped), and a finished grid says so again at once."""

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._finished = False


def set_gate(tuner, gate: BudgetGate) -> bool:
    """A restored Tuner's grid searcher under this session's budget (the pickled one kept the old)."""
    local = getattr(tuner, "_local_tuner", None)
    search_alg = getattr(getattr(local, "_tune_config", None), "search_alg", None)
    searcher = getattr(search_alg, "searcher", None)
    if not isinstance(searcher, GridSearcher):
        return False
    searcher.gate = gate  # its hours spent come back with the searcher's saved state, into this gate
    return True


def trial_cost(plan, spec) -> TrialCost:
    """What a trial of `spec` (its GPUs resolved) holds, and what the plan (None: none made) said of it."""
    devices = spec.gpus if spec.gpus else spec.cpus
    if plan is None:
        return TrialCost(devices)
    planned = plan.planned_hours()
    return TrialCost(devices, planned, plan.wall_s, sum(planned.values()) / max(1, len(planned)))
