"""What `tokensweep run` prints: the compact view while the sweep runs, and the findings it ends with.

What a sweep resolved: the lines `tokensweep run` ends with.

A difference between two architectures' throughput, or two configurations' top-1, is *resolved* when
the 95% interval of the difference excludes 0 (dashboards.stats: the rule the dashboard and
`tokensweep report` use too). Throughput differences are paired over the bench's repeats; top-1
differences are Welch's over a configuration's seeds. One seed per configuration gives no top-1
interval, and the line says so. A few pairs are named; `tokensweep report` lists every one.

What `tokensweep run` prints while a sweep runs: one compact view instead of Ray Tune's tables.

    default  a live view: each running trial's epoch, top-1 and images/sec, a progress bar and an ETA,
             redrawn in place on a terminal; one line per trial event (started, finished, failed,
             retried) when the output is not a terminal (a log file, `ray job submit`, CI), plus a
             progress line every few minutes so a long sweep's log shows it is alive
    -v       Ray Tune's own tables (its trial config and status tables; -vv: every epoch's result)
             and the trials' own log lines, as Ray prints them
    -q       nothing until the summary

Ray's and Tune's own chatter is switched off in the default and -q modes by
`tokensweep.commands.run.quiet_ray` (before Ray is imported), `quiet_loggers` and `tune_callbacks`
(for `fit`): which switch does what is said where it is set.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time

from ray import tune

from dashboards.configurations import BENCH
from dashboards.differences import THROUGHPUT, TOP1, Config, PairDifference, metric_differences, pairs
from dashboards.runs import label
from dashboards.stats import PAIRED, UNADJUSTED, WELCH, Summary, summarize
from tokensweep.payload import TrialPayload
from tokensweep.tracking.callback import ENDED, failure_reason


MAX_PAIRS = 3  # pairs named per kind (resolved, unresolved); `tokensweep report` lists them all
SEEDS_HINT = "[sweep] seeds = [0, 1, 2]"
CONFIRM_HINT = "[search] confirm_seeds = [0, 1, 2]"


def named(pairs_: list[PairDifference], sep: str) -> str:
    return ", ".join(f"{p.a} {sep} {p.b}" for p in pairs_[:MAX_PAIRS]) + (" ..." if len(pairs_) > MAX_PAIRS else "")


def _ordered(p: PairDifference) -> PairDifference:
    """The better configuration first."""
    return p if p.difference.mean >= 0 else PairDifference(p.metric, p.b, p.a, p.difference)


def line(what: str, configs: list[Config], metric: str, sweep: str) -> str:
    diffs = [d for d in metric_differences(configs, metric, pairs([c.name for c in configs]))
             if d.difference.resolved is not None]  # fmt: skip
    resolved = [_ordered(d) for d in diffs if d.resolved]
    unresolved = [d for d in diffs if not d.resolved]
    text = f"  {what}: {len(resolved)} of {len(diffs)} difference(s) resolved"
    if resolved:
        text += f" ({named(resolved, '>')})"
    if unresolved:
        text += f"; unresolved: {named(unresolved, '~')}"
    if len(resolved) > MAX_PAIRS or len(unresolved) > MAX_PAIRS:
        text += f"; every pair: tokensweep report {sweep}"
    return text


def bench_summary(row: dict, bench_id: str) -> Summary:
    repeats = tuple(row["repeat_images_per_sec"])
    return Summary(len(repeats), row["images_per_sec"], None, row["ci_low"], row["ci_high"], PAIRED, repeats, bench_id)


def throughput_line(table: dict | None, sweep: str) -> str | None:
    if not table or len(table["rows"]) < 2:
        return None
    bench_id = table.get("bench_id") or "bench"
    configs = [Config(r["label"], [], {THROUGHPUT: bench_summary(r, bench_id)}) for r in table["rows"]]
    return line(f"{label(BENCH)}, {table['repeats']} repeats, {PAIRED}", configs, THROUGHPUT, sweep)  # the report's words


def config_label(name: str) -> str:
    return re.sub(r"-seed=\d+$", "", re.sub(r"^confirm-", "", name))[:48]


def top1_line(configurations: list[tuple[str, list[float]]], sweep: str, seeds_hint: str = SEEDS_HINT) -> str | None:
    """configurations: (label, the top-1 of each finished seed), one per config_id."""
    groups = [(label, values) for label, values in configurations if values]
    if len(groups) < 2:
        return None
    if max(len(v) for _, v in groups) < 2:
        return f"  top-1: one seed per configuration, no interval: {seeds_hint} tells effects from noise"
    replicated = [Config(label, [], {TOP1: summarize(values)}) for label, values in groups if len(values) > 1]
    single = len(groups) - len(replicated)
    n = sorted({c.summaries[TOP1].n for c in replicated})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
    text = line(f"top-1 ({seeds} seeds, {WELCH})", replicated, TOP1, sweep) if len(replicated) > 1 else None
    if text and single:
        text += f"; {single} single-seed configuration(s) left out"
    return text


def findings(table: dict | None, configurations: list[tuple[str, list[float]]], seeds_hint: str = SEEDS_HINT,
             sweep: str = "SWEEP") -> list[str]:  # fmt: skip
    lines = [x for x in (throughput_line(table, sweep), top1_line(configurations, sweep, seeds_hint)) if x]
    if not lines:
        return []
    return [f"differences (resolved: the 95% interval of the difference excludes 0; {UNADJUSTED}):", *lines]


HEARTBEAT_S = 300.0  # not on a terminal: a progress line at most this often (none for a short sweep)
REDRAW_S = 0.5  # on a terminal: the live view is redrawn at most this often
BAR_WIDTH = 24


def quiet_loggers(verbose: int) -> None:
    """After MLflow is imported: its INFO lines ("Creating initial MLflow database tables...") go."""
    if verbose <= 0:
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


def tune_callbacks(spec, options, total: int | None = None, cost=None) -> list:
    """The callbacks `fit` adds for the terminal, and Tune's result files without TensorBoard's.
    `total`: the trials the view counts to (default: the spec's; Optuna's confirmation has its own).
    `cost`: the plan's TrialCost (tokensweep.sweep.budget), for the view's device-hours.

    TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1 stops Tune from adding its CSV, JSON and TensorBoard loggers
    (and so its "To visualize your results with TensorBoard" hint: the sweep's record is MLflow);
    the CSV and JSON ones are added back here, since result.json and progress.csv are what Tune's
    own tools (ExperimentAnalysis, a trial's folder) read.
    """
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    callbacks = [CSVLoggerCallback(), JsonLoggerCallback()]
    if options.verbose <= 0 and not options.quiet:
        callbacks.append(SweepProgress(total or spec.num_trials, cost=cost))
    return callbacks


def traceback_file(trial) -> str | None:
    """Where a failed trial's whole traceback is kept: Tune's error.txt in the trial's folder of the storage
    (relative to here when below it). The view prints one line per failure; -v also prints Ray's traceback."""
    path = getattr(trial, "path", None)
    if not path:
        return None
    try:
        scheme = trial.storage.storage_filesystem.type_name
    except AttributeError:
        scheme = "local"
    if scheme != "local":
        return f"{scheme}://{path}/error.txt"
    where = os.path.join(path, "error.txt")
    relative = os.path.relpath(where)
    return where if relative.startswith("..") else relative


# --- the view -------------------------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def fmt_number(value, digits: int = 0) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class TrialState:
    """What the view knows of one trial."""

    def __init__(self, name: str, planned_epochs: int | None, clock=time.monotonic):
        self.name, self.clock = name, clock
        self.planned = planned_epochs
        self.epoch = 0
        self.top1 = None
        self.train_ips = None  # training images/s of the last epoch
        self.images_per_sec = None  # inference, measured after the last epoch
        self.status = "running"
        self.started = clock()
        self.ended = None

    def epochs_text(self) -> str:
        return f"epoch {self.epoch}/{self.planned or '?'}"

    def line(self) -> str:
        """One line: name, epoch, top-1 and a throughput (inference once measured, else training)."""
        speed = (
            f"{fmt_number(self.images_per_sec)} img/s"
            if self.images_per_sec is not None
            else f"train {fmt_number(self.train_ips)} img/s"
        )
        took = fmt_duration((self.ended or self.clock()) - self.started)
        return f"{self.name}  {self.epochs_text()}  top1 {fmt_number(self.top1, 2)}  {speed}  {took}"


def planned_epochs(config: dict) -> int | None:
    """The epochs a trial will run (its own value, else TrialConfig's default)."""
    try:
        values = TrialPayload.decode(config).values
        if isinstance(values.get("epochs"), int):
            return values["epochs"]
        from trials import TrialConfig

        return TrialConfig.from_dict(values).epochs
    except Exception:  # the view never fails a sweep
        return None


class SweepProgress(tune.Callback):
    """The default view (a Tune callback on the driver). `out`: a stream; `tty`: redraw in place
    (default: whether `out` is a terminal). Picklable: Tune saves its callbacks with the experiment."""

    def __init__(self, num_trials: int, out=None, tty: bool | None = None, clock=time.monotonic, cost=None):
        self.num_trials = num_trials
        self._out, self._tty, self.clock = out, tty, clock
        self.cost = cost  # tokensweep.sweep.budget.TrialCost: device-hours spent and the plan's remaining estimate
        self._reset()

    def _reset(self) -> None:
        self.trials: dict[str, TrialState] = {}
        self.done = self.failed = 0
        self.earlier = 0  # trials that had ended before this session (a resumed sweep)
        self.epochs_seen = 0  # epoch results reported in this session: the ETA's rate
        self.first_start = None
        self.drawn = 0  # lines of the live view on screen (a terminal)
        self.last_draw = self.last_heartbeat = 0.0

    def __getstate__(self):
        return {**self.__dict__, "_out": None, "trials": {}, "drawn": 0}

    @property
    def out(self):
        return self._out if self._out is not None else sys.stdout

    @property
    def tty(self) -> bool:
        if self._tty is None:
            try:
                return self.out.isatty()
            except (AttributeError, ValueError):
                return False
        return self._tty

    def setup(self, **info):
        self._reset()  # a resumed sweep: this session's counts
        self.last_heartbeat = self.clock()

    # --- Tune's events ---
    def on_trial_start(self, iteration, trials, trial, **info):
        if self.first_start is None:
            self.first_start = self.clock()
        state = self.trials.get(trial.trial_id)
        if state is None:
            state = self.trials[trial.trial_id] = TrialState(str(trial), planned_epochs(trial.config), self.clock)
        state.status, state.ended = "running", None
        self.event(f"started   {state.name}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        state = self.trials.get(trial.trial_id)
        if state is None:
            return
        epoch = result.get("epoch")
        if isinstance(epoch, int) and epoch > state.epoch:
            self.epochs_seen += epoch - state.epoch
            state.epoch = epoch
        state.top1 = result.get("top1", state.top1)
        state.train_ips = result.get("train_images_per_sec_epoch", state.train_ips)
        state.images_per_sec = result.get("images_per_sec", state.images_per_sec)
        self.redraw()

    def on_trial_complete(self, iteration, trials, trial, **info):
        state = self._end(trial, "finished")
        self.done += 1
        early = state.planned is not None and state.epoch < state.planned
        self.event(f"finished  {state.line()}" + ("  (stopped early by the scheduler)" if early else ""))

    def on_trial_error(self, iteration, trials, trial, **info):
        state = self._end(trial, "failed")
        self.failed += 1
        self.event(f"failed    {state.name}  {state.epochs_text()}  {self._reason(trial)}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        state = self._end(trial, "retrying")
        self.event(f"retrying  {state.name} after {state.epochs_text()} (failure {trial.num_failures}): {self._reason(trial)}")

    def on_step_end(self, iteration, trials, **info):
        self.earlier = sum(1 for t in trials if t.trial_id not in self.trials and getattr(t, "status", None) in ENDED)
        if self.tty:
            self.redraw()
        elif self.clock() - self.last_heartbeat >= HEARTBEAT_S and self.running():
            self.last_heartbeat = self.clock()
            self.write_lines([self.summary_line()])

    def on_experiment_end(self, trials, **info):
        self.clear()

    def _end(self, trial, status: str) -> TrialState:
        state = self.trials.get(trial.trial_id) or TrialState(str(trial), planned_epochs(trial.config), self.clock)
        self.trials[trial.trial_id] = state
        state.status, state.ended = status, self.clock()
        if trial.last_result:
            state.images_per_sec = trial.last_result.get("images_per_sec", state.images_per_sec)
        return state

    @staticmethod
    def _reason(trial) -> str:
        where = traceback_file(trial)
        return failure_reason(trial)[:300] + (f"  (traceback: {where})" if where else "")

    # --- what is shown ---
    def running(self) -> list[TrialState]:
        return [s for s in self.trials.values() if s.status == "running"]

    def eta_s(self) -> float | None:
        """Remaining epochs over this session's rate (epochs per second, all trials together)."""
        if not self.epochs_seen or self.first_start is None:
            return None
        known = [s.planned for s in self.trials.values() if s.planned]
        per_trial = sum(known) / len(known) if known else None
        if per_trial is None:
            return None
        remaining = sum(max(0, (s.planned or per_trial) - s.epoch) for s in self.running())
        remaining += max(0, self.num_trials - len(self.trials) - self.earlier) * per_trial
        rate = self.epochs_seen / max(1e-9, self.clock() - self.first_start)
        return remaining / rate

    def ended(self) -> int:
        return self.done + self.failed + self.earlier

    def summary_line(self) -> str:
        ended = self.ended()
        running = self.running()
        text = f"{bar(ended / max(1, self.num_trials))} {ended}/{self.num_trials} trials"
        if self.failed:
            text += f" ({self.failed} failed)"
        text += f", {len(running)} running"
        if self.first_start is not None:
            text += f"  {fmt_duration(self.clock() - self.first_start)} elapsed, ETA {fmt_duration(self.eta_s())}"
        if self.cost is not None and self.cost.planned:
            text += self.cost_text()
        return text

    def cost_text(self) -> str:
        """This session's device-hours spent, the plan's estimate of what is left (scaled by what finished trials
        took against their plan) and the ETA it gives on the devices the running trials hold."""
        c, now = self.cost, self.clock()
        spent = sum(c.hours((s.ended or now) - s.started) for s in self.trials.values())
        done = [s for s in self.trials.values() if s.status == "finished"]
        planned_done = sum(c.planned_hours(s.name) for s in done)
        factor = sum(c.hours(s.ended - s.started) for s in done) / planned_done if planned_done else 1.0
        running = self.running()
        left = sum(max(0.0, c.planned_hours(s.name) - c.hours(now - s.started)) for s in running)
        left += max(0, self.num_trials - len(self.trials) - self.earlier) * c.default_h
        left *= factor
        eta = left * 3600 / (c.devices * max(1, len(running)))
        return f"; {spent:.3g} device-h spent, {left:.3g} left by the plan, ETA {fmt_duration(eta)}"

    def event(self, text: str) -> None:
        ended = self.ended()
        self.write_lines([f"[{ended:>{len(str(self.num_trials))}}/{self.num_trials} done] {text}"])

    # --- writing ---
    def write_lines(self, lines: list[str]) -> None:
        """Lines that stay (above the live view on a terminal)."""
        self.clear()
        for line in lines:
            self.out.write(line + "\n")
        self.redraw(force=True)

    def live_lines(self) -> list[str]:
        width, height = shutil.get_terminal_size((100, 24))
        rows = [f"  running   {s.line()}" for s in self.running()]
        room = max(1, height - 3)
        if len(rows) > room:
            rows = rows[: room - 1] + [f"  ... and {len(rows) - room + 1} more running"]
        return [r[: width - 1] for r in rows + [self.summary_line()]]

    def redraw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = self.clock()
        if not force and now - self.last_draw < REDRAW_S:
            return
        self.last_draw = now
        self.clear()
        lines = self.live_lines()
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)

    def clear(self) -> None:
        """Remove the live view: cursor up over its lines, erase to the end of the screen."""
        if self.tty and self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
        self.drawn = 0
        try:
            self.out.flush()
        except (AttributeError, ValueError):
            pass
