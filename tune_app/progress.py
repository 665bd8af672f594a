"""What `search` and `confirm` show while they run: counts per phase, elapsed, ETA, the front.

A Ray Tune `ProgressReporter` (Ray calls it from the driver's loop with every trial it knows).
On a terminal it redraws a compact display with rich, fitted to the terminal's width; when the
output is not a terminal (CI, nohup, a log file) it prints plain lines instead: one per
finished trial and one status line a minute. `--verbose` keeps Ray's own status table instead.
The ETA is `tune_app.eta`'s: the plans of the remaining trials priced by the calibration.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune import ProgressReporter

from analysis.load import read_results
from analysis.pareto import pareto_mask
from search_spaces import SearchSpace
from trainers import plan_for
from tune_app.driver import METRIC_COLUMNS, PARAM_COLUMNS
from tune_app.eta import EpochCosts, Estimate, TrialWork, estimate
from tune_app.settings import say
from tune_app.suggestion import space_settings, suggested_config

STATUS_EVERY_S = 60.0  # plain output: a status line this often, besides one per finished trial
REDRAW_EVERY_S = 1.0  # terminal display: at most this often
FRONT_LINES = 3
ENDED = ("TERMINATED", "ERROR")


@dataclass(frozen=True)
class Counts:
    done: int
    running: int
    pending: int  # known to Ray but not started, plus not yet created


def plan_of(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, int]:
    """Epochs per phase the trial Ray's `config` describes (searched or baseline) will train:
    without the SSL epochs it takes from the cache (`reuses_ssl`)."""
    trial = _trial(space, config)
    plan = dict(plan_for(trial))
    if _reuses(space, trial):
        plan["ssl"] = 0
    return plan


def reuses_ssl(space: SearchSpace, config: Mapping[str, Any]) -> bool:
    """Whether the trial takes its whole SSL phase from the cache: a MixTraining trial under
    `ssl_schedule: budget` whose seed has an SSL+SL baseline (the baselines run first, and the
    baseline's SSL epochs are the prefix every MixTraining trial of its seed starts from)."""
    return _reuses(space, _trial(space, config))


def _reuses(space: SearchSpace, trial: Any) -> bool:
    return (
        trial.pipeline == "mixtraining"
        and trial.ssl_schedule == "budget"
        and "ssl_sl" in space.baseline_pipelines
        and trial.seed in space.baseline_seeds
    )


def _trial(space: SearchSpace, config: Mapping[str, Any]) -> Any:
    return suggested_config(space_settings(space), config)[0]


def mean_plan(plans: list[Mapping[str, float]], fallback: dict[str, int]) -> dict[str, float]:
    """The average plan (fractional epochs) of the MixTraining trials so far."""
    if not plans:
        return dict(fallback)
    return {p: sum(plan.get(p, 0) for plan in plans) / len(plans) for p in fallback}


class SearchProgress(ProgressReporter):
    """The progress of one Ray phase of a search (`search`: baselines + sampled trials, then
    the expected confirmation trials; `confirmation`: one confirm phase).

    Picklable (Ray keeps it in tuner.pkl): the display is made on first use.
    """

    def __init__(
        self,
        space: SearchSpace,
        phase: str,
        over_sl: dict[str, float],
        slots: int,
        earlier: Path | None = None,
        confirm_count: int | None = None,
    ) -> None:
        self.space, self.phase, self.slots = space, phase, max(1, slots)
        self.over_sl, self.earlier = over_sl, earlier
        # The confirmation trials: what this confirm phase runs, or what the space's
        # search.confirm will run at most after the search phase.
        self.confirm_count = (
            space.confirm_top_k * len(space.confirm_seeds)
            if confirm_count is None
            else confirm_count
        )
        self._reset()

    def _reset(self) -> None:
        self.costs = EpochCosts(dict(self.over_sl))
        # A confirm phase prices its plans, and times them, from the search's trials.
        self.finished_before = (
            learn_from_folder(self.costs, self.earlier, self.space)
            if self.earlier is not None
            else []
        )
        self.started = time.time()
        self.reported: set[str] = set()
        self.last_status = 0.0
        self.last_draw = 0.0
        self.live: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            k: self.__dict__[k]
            for k in ("space", "phase", "slots", "over_sl", "earlier", "confirm_count")
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # ------------------------------------------------------------ Ray's reporter interface

    def should_report(self, trials: list[Any], done: bool = False) -> bool:
        return True  # report() decides what to print, and how often

    def report(self, trials: list[Any], done: bool, *sys_info: str) -> None:
        for t in trials:
            observe(self.costs, t.trial_id, t.last_result or {})
        if sys.stderr.isatty():
            self._draw(trials, done)
        else:
            self._lines(trials, done)

    # ------------------------------------------------------------ what is shown

    def snapshot(self, trials: list[Any]) -> tuple[dict[str, Counts], Estimate]:
        """Counts per phase and the ETA of everything this command still has to run."""
        roles = {t.trial_id: self.role(t.config) for t in trials}
        work = [self.work(t) for t in trials]
        mix_plans = [
            w.plan for w, t in zip(work, trials, strict=True) if roles[t.trial_id] != "baselines"
        ]
        typical = mean_plan(mix_plans, plan_of(self.space, {}))
        counts, unseen = {}, []
        for phase, expected in self.expected().items():
            mine = [t for t in trials if roles[t.trial_id] == phase]
            done = sum(t.status in ENDED for t in mine)
            running = sum(t.status == "RUNNING" for t in mine)
            missing = max(0, expected - len(mine))
            counts[phase] = Counts(done, running, len(mine) - done - running + missing)
            unseen += self.unseen_plans(phase, mine, missing, typical)
        return counts, estimate(work, unseen, self.costs, self.slots, self.finished_before)

    def expected(self) -> dict[str, int]:
        s, confirm = self.space, self.confirm_count
        if self.phase == "confirmation":
            return {"confirmation": confirm}
        baselines = len(s.baseline_pipelines) * len(s.baseline_seeds)
        out = {"baselines": baselines, "search": s.num_samples}
        return {**out, "confirmation": confirm} if confirm else out

    def role(self, config: Mapping[str, Any]) -> str:
        if self.phase == "confirmation":
            return "confirmation"
        return "baselines" if config.get("pipeline", "mixtraining") != "mixtraining" else "search"

    def unseen_plans(
        self, phase: str, mine: list[Any], missing: int, typical: dict[str, float]
    ) -> list[Mapping[str, float]]:
        if phase != "baselines":
            return [typical] * missing
        seen = {(t.config.get("pipeline"), t.config.get("seed")) for t in mine}
        pairs = [(p, s) for p in self.space.baseline_pipelines for s in self.space.baseline_seeds]
        todo = [(p, s) for p, s in pairs if (p, s) not in seen]
        return [plan_of(self.space, {"pipeline": p, "seed": s}) for p, s in todo]

    def work(self, trial: Any) -> TrialWork:
        plan = plan_of(self.space, trial.config)
        skips = reuses_ssl(self.space, trial.config)
        return trial_work(plan, trial.status in ENDED, trial.last_result or {}, skips)

    def front_lines(self, trials: list[Any]) -> list[str]:
        """The front of the finished MixTraining runs so far (single runs), a few lines."""
        metrics = [o.metric for o in self.space.objectives]
        goals = [o.goal for o in self.space.objectives]
        rows = [
            t
            for t in trials
            if t.status == "TERMINATED"
            and self.role(t.config) != "baselines"
            and all((t.last_result or {}).get(m) is not None for m in metrics)
        ]
        if not rows:
            return []
        values = np.array([[t.last_result[m] for m in metrics] for t in rows], dtype=float)
        front = [t for t, on in zip(rows, pareto_mask(values, goals), strict=True) if on]
        front.sort(
            key=lambda t: -float(t.last_result[metrics[0]]) * (1 if goals[0] == "maximize" else -1)
        )
        knobs = list(self.space.searched)
        lines = []
        for t in front[:FRONT_LINES]:
            shown = " ".join(f"{k} {_short(t.config.get(k))}" for k in knobs)
            scores = ", ".join(f"{m} {_short(t.last_result[m])}" for m in metrics)
            lines.append(f"  {t.trial_id}  {shown}: {scores}")
        more = len(front) - FRONT_LINES
        return lines + ([f"  ... and {more} more"] if more > 0 else [])

    def status_text(self, trials: list[Any]) -> list[str]:
        counts, eta = self.snapshot(trials)
        elapsed = time.time() - self.started
        head = f"tune-app {self.space.name} ({self.phase} phase): elapsed {clock(elapsed)}; "
        ended = all(c.running + c.pending == 0 for c in counts.values())
        head += "all trials ended" if ended else eta_text(eta)
        lines = [head]
        for phase, c in counts.items():
            total = c.done + c.running + c.pending
            lines.append(
                f"  {phase:<12} {c.done:>3}/{total} done, {c.running} running, {c.pending} pending"
            )
        front = self.front_lines(trials)
        if front:
            lines += ["  front so far (single runs):", *front]
        return lines

    # ------------------------------------------------------------ the two outputs

    def _lines(self, trials: list[Any], done: bool) -> None:
        """Not a terminal: a line per finished trial, a status line a minute, and at the end.

        Each line starts with the wall-clock time and ends with the counts and the ETA, so a
        log alone shows how the estimate moved (benchmarks/eta_accuracy.py reads it).
        """
        ended = [t for t in trials if t.status in ENDED and t.trial_id not in self.reported]
        now = time.time()
        if not ended and not done and now - self.last_status < STATUS_EVERY_S:
            return
        counts, eta = self.snapshot(trials)
        tail = f" | {counts_text(counts)} | {eta_text(eta)}"
        stamp = time.strftime("[%H:%M:%S]", time.localtime(now))
        for t in ended:
            self.reported.add(t.trial_id)
            say(f"{stamp} {finished_line(t, self.space)}{tail}")
        if done or now - self.last_status >= STATUS_EVERY_S:
            self.last_status = now
            elapsed = clock(now - self.started)
            say(f"{stamp} tune-app {self.space.name} ({self.phase} phase): elapsed {elapsed}{tail}")

    def _draw(self, trials: list[Any], done: bool) -> None:
        """A terminal: one display redrawn in place (rich), left on screen at the end."""
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        now = time.time()
        if not done and now - self.last_draw < REDRAW_EVERY_S:
            return
        self.last_draw = now
        text = Text("\n".join(self.status_text(trials)), no_wrap=True, overflow="ellipsis")
        if self.live is None:
            self.live = Live(text, console=Console(stderr=True), auto_refresh=False)
            self.live.start()
        self.live.update(text, refresh=True)
        if done:
            self.live.stop()
            self.live = None


def observe(costs: EpochCosts, trial_id: str, result: Mapping[str, Any]) -> None:
    """Feed `costs` one reported epoch (a result without an epoch or a cost is skipped)."""
    if result.get("epoch") and result.get("calibrated_latency_s") is not None:
        epoch, phase = int(result["epoch"]), str(result.get("phase"))
        costs.observe(trial_id, epoch, phase, result["calibrated_latency_s"])


def trial_work(
    plan: Mapping[str, float],
    finished: bool,
    result: Mapping[str, Any],
    plan_skips_reuse: bool = False,
) -> TrialWork:
    """A trial as the ETA sees it, from its plan and its last reported result."""
    return TrialWork(
        plan,
        finished=finished,
        calibrated_done=float(result.get("calibrated_latency_s") or 0.0),
        slot_s=float(result.get("time_total_s") or 0.0),
        train_s=result.get("compute_s", result.get("train_latency_s")),
        reused_epochs=int(result.get("ssl_epochs_reused") or 0),
        plan_skips_reuse=plan_skips_reuse,
    )


def learn_from_folder(
    costs: EpochCosts, folder: Path, space: SearchSpace | None = None
) -> list[TrialWork]:
    """Feed `costs` every epoch the trials in `folder/<trial>/result.json` reported; return
    those trials that ran their whole plan, as finished work (for the slot model). With the
    `space`, a trial whose plan leaves out its cached SSL epochs (`reuses_ssl`) says so."""
    finished = []
    for results in sorted(folder.glob("*/result.json")):
        rows = read_results(results)
        for row in rows:
            observe(costs, str(row.get("trial_id", results.parent.name)), row)
        last = rows[-1] if rows else {}
        if last.get("epoch") and last.get("epoch") == last.get("epochs_planned"):
            config = last.get("config") or {}
            skips = space is not None and bool(config) and reuses_ssl(space, config)
            finished.append(trial_work({}, True, last, skips))
    return finished


def finished_line(trial: Any, space: SearchSpace) -> str:
    r = trial.last_result or {}
    pipeline, seed = trial.config.get("pipeline", "mixtraining"), trial.config.get("seed")
    name = f"{pipeline}, seed {space.seed if seed is None else seed}"
    if trial.status == "ERROR":
        return f"trial {trial.trial_id} ({name}) failed (see its error.txt)"
    scores = ", ".join(f"{o.metric} {_short(r.get(o.metric))}" for o in space.objectives)
    return f"trial {trial.trial_id} ({name}) finished: {scores}"


def counts_text(counts: dict[str, Counts]) -> str:
    return "; ".join(
        f"{phase} {c.done}/{c.done + c.running + c.pending}" for phase, c in counts.items()
    )


def eta_text(eta: Estimate) -> str:
    if eta.seconds is None:
        return "ETA: after the first epochs"
    end = time.strftime("%H:%M", time.localtime(time.time() + eta.seconds))
    return f"ETA {clock(eta.seconds)} (ends about {end})"


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def step_ratios(
    space: SearchSpace, tables: Mapping[str, Mapping[str, float]] | None
) -> dict[str, float]:
    """Per phase with as many batches per epoch as SL (MIX; SSL when it runs on the labelled
    images): its step's calibrated cost over an SL step's (the first node type's table)."""
    from trainers.pricing import step_kind

    if not tables:
        return {}
    table = next(iter(tables.values()))
    config = space.trial_config({})
    kinds = {"mix": step_kind("mix", config.mix_pass, None)}
    if config.ssl_source == "same":
        kinds["ssl"] = "ssl"
    sl = table.get("sl")
    return {p: table[k] / sl for p, k in kinds.items() if sl and table.get(k)}


def reporter(
    space: SearchSpace,
    phase: str,
    verbose: bool,
    tables: Mapping[str, Mapping[str, float]] | None,
    slots: int,
    earlier: Path | None = None,
    confirm_count: int | None = None,
) -> ProgressReporter:
    """`SearchProgress`, or with `verbose` Ray's status table over the space's objectives.

    `earlier`: the local experiment folder whose trials ran before this phase (their epoch
    costs price a confirm phase's plans from its first moment); `confirm_count`: the trials
    of this confirm phase."""
    if verbose:
        from ray import tune

        return tune.CLIReporter(
            parameter_columns=[
                c for c in PARAM_COLUMNS if c in space.parameters or c in ("pipeline", "seed")
            ],
            metric_columns=list(METRIC_COLUMNS) + [o.metric for o in space.objectives],
            max_report_frequency=30,
            max_progress_rows=40,
        )
    ratios = step_ratios(space, tables)
    return SearchProgress(space, phase, ratios, slots, earlier, confirm_count)
