"""Early stopping on both objectives: asynchronous successive halving by Pareto rank.

Rungs are counted in supervised epochs (MIX + SL), never SSL epochs, whose accuracy means
nothing. A trial reaching a rung is ranked against every trial already recorded there: by
non-dominated sorting, ties within a front broken by hypervolume contribution (larger first,
then arrival order). It continues when it ranks in the top `ceil(n / eta)` of the `n` recorded,
else it is stopped. Baselines and confirmation runs are never stopped.

The decision (`continues`) is a pure function of a rung table; `ParetoHalving` is the Ray
plumbing around it. A stopped trial's last result gets `stopped_at_rung` (the rung, in
supervised epochs) so the searcher tells Optuna PRUNED and trials.parquet says where it stopped.
Ray does not save scheduler state: on `--resume` the rungs are rebuilt from each trial's
result.json as Ray re-adds the trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from analysis.load import parse_results
from analysis.pareto import rank_points
from search_spaces import SearchSpace
from trainers import plan_for
from tune_app.suggestion import space_settings, suggested_config

STOPPED_KEY = "stopped_at_rung"
Rung = dict[str, tuple[float, ...]]  # trial id -> objective values, in arrival order


def rung_levels(grace: int, eta: float, supervised_epochs: int) -> list[int]:
    """Supervised-epoch counts where trials are judged: grace * eta^k, below the last epoch.

    Judging at the last epoch would save nothing, so a rung there is left out.
    """
    levels, k = [], 0
    while (level := int(round(grace * eta**k))) < supervised_epochs:
        if level not in levels:
            levels.append(level)
        k += 1
    return levels


def continues(rung: Rung, trial_id: str, goals: Sequence[str], eta: float) -> bool:
    """Whether `trial_id`, recorded in `rung`, is in the top 1/eta of it.

    Args:
        rung: every trial recorded at this rung so far (the judged one included), mapped to
            its objective values in the space's order; insertion order is arrival order.
        trial_id: the trial being judged.
        goals: maximize | minimize per objective.
        eta: the reduction factor (> 1).

    Returns:
        True when the trial ranks among the best `ceil(n / eta)` of the `n` recorded.
    """
    ids = list(rung)
    keep = max(1, math.ceil(len(ids) / eta))
    return ids.index(trial_id) in rank_points(np.array([rung[i] for i in ids]), goals)[:keep]


class ParetoHalving(FIFOScheduler):
    """Ray Tune scheduler: `continues` applied at each rung (see the module docstring)."""

    def __init__(self, space: SearchSpace, grace: int, eta: float) -> None:
        super().__init__()
        self.space, self.grace, self.eta = space, grace, eta
        self.metrics = [o.metric for o in space.objectives]
        self.goals = [o.goal for o in space.objectives]
        self.rungs: dict[int, Rung] = {}
        self.stopped: dict[str, int] = {}

    def set_search_properties(self, metric: Any, mode: Any, **spec: Any) -> bool:
        return True  # the objectives come from the space; nothing for Ray to set

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        """A restored trial brings back its rung entries (Ray keeps no scheduler state)."""
        if STOPPED_KEY in (trial.run_metadata.last_result or {}):
            self.stopped[trial.trial_id] = trial.run_metadata.last_result[STOPPED_KEY]
        for result in past_results(trial):
            self.record(trial.trial_id, trial.config, result)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        level = self.record(trial.trial_id, trial.config, result)
        if level is None or continues(self.rungs[level], trial.trial_id, self.goals, self.eta):
            return TrialScheduler.CONTINUE
        self.stopped[trial.trial_id] = level
        return TrialScheduler.STOP

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        # Ray hands the searcher (and saves) this very dict after us: the mark reaches both.
        if trial.trial_id in self.stopped:
            trial.last_result[STOPPED_KEY] = self.stopped[trial.trial_id]

    def record(self, trial_id: str, config: dict[str, Any], result: dict) -> int | None:
        """Enter `result` in its rung table; the rung (supervised epochs) or None if none."""
        if not stoppable(config):
            return None
        supervised, levels = self.supervised(config, result)
        found = [result.get(m) for m in self.metrics]
        if supervised not in levels or any(v is None for v in found):
            return None
        self.rungs.setdefault(supervised, {})[trial_id] = tuple(float(v or 0.0) for v in found)
        return supervised

    def supervised(self, config: dict[str, Any], result: dict) -> tuple[int, list[int]]:
        """(supervised epochs done at `result`, this trial's rung levels)."""
        trial, _ = suggested_config(space_settings(self.space), config)
        plan = dict(plan_for(trial))
        done = int(result.get("epoch") or 0) - plan["ssl"]
        return done, rung_levels(self.grace, self.eta, plan["mix"] + plan["sl"])

    def debug_string(self) -> str:
        return f"Pareto halving: {len(self.stopped)} stopped; rungs {sorted(self.rungs)}"


def stoppable(config: dict[str, Any]) -> bool:
    """Only sampled MixTraining trials: never a baseline, never a confirmation run."""
    return (
        config.get("pipeline", "mixtraining") == "mixtraining" and config.get("role") != "confirm"
    )


def past_results(trial: Trial) -> list[dict]:
    """The results a trial reported before this driver started (its result.json lines)."""
    if not trial.has_reported_at_least_once:  # nothing to read yet
        return []
    return reported_results(trial)


def reported_results(trial: Any) -> list[dict[str, Any]]:
    """The rows Ray recorded for a trial in its result.json, wherever the experiment is stored
    (none if it never reported); read by `analysis.load.parse_results`'s rule."""
    # trial.path is the trial's folder in the experiment (on any filesystem pyarrow knows);
    # trial.local_path would be Ray's fresh staging folder.
    if trial.storage is None:
        return []
    try:
        with trial.storage.storage_filesystem.open_input_stream(f"{trial.path}/result.json") as f:
            text = f.read().decode()
    except (OSError, FileNotFoundError):  # a trial that never reported: nothing to read
        return []
    return parse_results(text)


def build_scheduler(space: SearchSpace) -> TrialScheduler | None:
    """The scheduler a space asks for: None (Ray's FIFO) or `ParetoHalving`."""
    s = space.scheduler
    if s.get("type", "fifo") == "fifo":
        return None
    return ParetoHalving(space, grace=s["grace"], eta=s["eta"])
