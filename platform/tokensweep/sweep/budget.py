"""A sweep's device-hours: what each trial cost, what the plan said, and the budget that holds them.

`TrialCost` is what the driver knows of the plan (tokensweep.plan): each trial's planned device-hours
and the devices a trial holds. `BudgetGate` decides, before the searcher hands out a trial, whether
it may start: not once the hours spent plus the running trials' (each the larger of its plan and what
it has run so far) plus its own plan would pass [sweep] budget_hours. A grid's searcher asks it with
the next variant's plan (tokensweep.sweep.tuner.GridSearcher); a search's (Optuna's) is wrapped in
`SearchUnderBudget`, which asks it with the plan's mean per trial before a sample is drawn.

`ResumableSearch` keeps a budget-stopped sweep resumable: Tune saves a searcher that said it was
finished as finished, and a resumed sweep with a larger budget must go on. It also carries the
sweep's max_concurrent_trials (`searching`): Tune applies that limit only to a bare Searcher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ray.tune.search import ConcurrencyLimiter, SearchGenerator, Searcher

from tokensweep.sweep.tuner import GridSearcher, search_alg_of, searchers_of

HOUR_S = 3600.0


@dataclass
class TrialCost:
    devices: float  # GPUs a trial holds, or its cores on CPU
    planned: dict = field(default_factory=dict)  # trial name -> planned device-hours
    wall_s: float | None = None  # the plan's wall time of the sweep (None: no plan was made)
    default_h: float = 0.0  # a trial the plan has no row for (a search's): the plan's mean
    reserved_h: float = 0.0  # kept for what runs after the gated trials (an Optuna search's confirmation stage)

    @property
    def has_plan(self) -> bool:
        return self.wall_s is not None

    def planned_hours(self, name: str | None) -> float:
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

    def allows(self, name: str | None, now: float | None = None) -> bool:
        if self.budget_h is None:
            return True
        return self.spent_h + self.running_h(now) + self.cost.planned_hours(name) + self.cost.reserved_h <= self.budget_h

    def admit(self, trial_id: str, name: str | None, left, now: float | None = None) -> bool | None:
        """Whether trial `name` (None: a search's next sample) starts now. True: it does, counted as running;
        None: not yet, what the running trials spend decides when they end; False: not in this session, and
        `left()` (the names of what is left, this one first) is recorded as not started."""
        if self.allows(name, now):
            self.started(trial_id, name, now)
            return True
        if self.running:
            return None
        self.not_started = left()
        return False

    def started(self, trial_id: str, name: str | None, now: float | None = None) -> None:
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


class SearchUnderBudget(Searcher):
    """A search's searcher (Optuna's) under the budget: asked for a sample only while the budget has room
    for one more trial at the plan's mean, so no sample is drawn that the budget would not run. What it
    handed out and the hours spent are saved with Tune's state (get_state), so --resume goes on from there."""

    gate = None

    def __init__(self, searcher: Searcher, gate: BudgetGate | None, samples: int):
        self.searcher, self.gate, self.samples, self.suggested = searcher, gate, samples, 0
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def suggest(self, trial_id: str):
        if self.gate is not None:
            admitted = self.gate.admit(trial_id, None, self._left)
            if not admitted:
                return None if admitted is None else Searcher.FINISHED
        config = self.searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            if self.gate is not None:
                self.gate.running.pop(trial_id, None)
            return config
        self.suggested += 1
        return config

    def _left(self) -> list[str]:
        return [f"sample {k}" for k in range(self.suggested + 1, self.samples + 1)]

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        if self.gate is not None:
            self.gate.ended(trial_id)
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def get_state(self) -> dict:
        return {"suggested": self.suggested, "spent_h": self.gate.spent_h if self.gate is not None else 0.0}

    def set_state(self, state: dict) -> None:
        self.suggested = int(state.get("suggested", 0))
        if self.gate is not None:
            self.gate.spent_h = float(state.get("spent_h", 0.0))

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)


class ResumableSearch(SearchGenerator):
    """Tune's SearchGenerator, except that a restored one is never finished: its searcher says whether
    trials are left (those a budget stopped), and a finished one says so again at once."""

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._finished = False


GridSearch = ResumableSearch  # the name in Tuners pickled by earlier sessions, which --resume unpickles


def searching(searcher: Searcher, max_concurrent: int | None) -> ResumableSearch:
    """The sweep's searcher as Tune runs it: resumable after a budget stop, at most `max_concurrent` trials at once."""
    if max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    return ResumableSearch(searcher)


def set_gate(tuner, gate: BudgetGate) -> bool:
    """A restored Tuner's searcher under this session's budget (the pickled one kept the old)."""
    for searcher in searchers_of(search_alg_of(tuner)):
        if isinstance(searcher, (GridSearcher, SearchUnderBudget)):
            searcher.gate = gate  # its hours spent come back with the searcher's saved state, into this gate
            return True
    return False


def trial_cost(plan, spec) -> TrialCost:
    """What a trial of `spec` (its GPUs resolved) holds, and what the plan (None: none made) said of it."""
    devices = spec.gpus if spec.gpus else spec.cpus
    if plan is None:
        return TrialCost(devices)
    planned = plan.planned_hours()
    confirmation_h = plan.confirmation.get("device_hours", 0.0)
    return TrialCost(devices, planned, plan.wall_s, sum(planned.values()) / max(1, len(planned)), confirmation_h)
