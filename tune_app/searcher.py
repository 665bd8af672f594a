"""The searcher of a search: Optuna under both objectives, with the baselines run first.

`BaselinesFirst` hands out the baseline trials (SL, SSL+SL for each seed) before asking Optuna,
so they are trials of the same experiment with the same fixed settings; their results are not
told to Optuna (they are not points of its space). Wrapped in Ray's `ConcurrencyLimiter`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from search_spaces import Param, SearchSpace
from tune_app._internals import optuna_search_study, optuna_search_trials, optuna_trial_id
from tune_app.location import study_url
from tune_app.scheduler import STOPPED_KEY

GOAL_TO_MODE = {"maximize": "max", "minimize": "min"}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler a space names. TPE needs `multivariate=True` for two objectives."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}")


def distribution(p: Param) -> optuna.distributions.BaseDistribution | None:
    """A space parameter as an Optuna distribution; None for constants (fixed, not searched)."""
    kind = p.distribution
    if kind == "uniform":
        return optuna.distributions.FloatDistribution(p.min, p.max)
    if kind == "log_uniform_values":
        return optuna.distributions.FloatDistribution(p.min, p.max, log=True)
    if kind == "int_uniform":
        return optuna.distributions.IntDistribution(int(p.min), int(p.max))
    if kind == "q_uniform":
        return optuna.distributions.FloatDistribution(p.min, p.max, step=p.q)
    if kind == "categorical":
        return optuna.distributions.CategoricalDistribution(list(p.values))
    return None


def optuna_space(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """The searched parameters as Optuna distributions. A `rho` range that acts in steps at
    the space's fixed epochs is given as its steps (`SearchSpace.rho_steps`)."""
    dists = {name: distribution(p) for name, p in space.parameters.items()}
    steps = space.rho_steps()
    if steps is not None:
        dists["rho"] = optuna.distributions.CategoricalDistribution(steps)
    return {name: d for name, d in dists.items() if d is not None}


def baseline_configs(space: SearchSpace) -> list[dict[str, Any]]:
    return [
        {"pipeline": pipeline, "seed": seed}
        for pipeline in space.baseline_pipelines
        for seed in space.baseline_seeds
    ]


class BaselinesFirst(Searcher):
    """Suggests each baseline config once, then delegates to the wrapped searcher."""

    def __init__(self, searcher: Searcher, baselines: list[dict[str, Any]]) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.pending = list(baselines)
        self.baseline_trials: dict[str, dict[str, Any]] = {}

    def set_search_properties(self, metric: Any, mode: Any, config: dict, **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.pending:
            self.baseline_trials[trial_id] = self.pending.pop(0)
            return dict(self.baseline_trials[trial_id])
        suggestion = self.searcher.suggest(trial_id)
        if isinstance(suggestion, dict):  # not None / Searcher.FINISHED
            suggestion = {**suggestion, "pipeline": "mixtraining"}
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.baseline_trials:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id not in self.baseline_trials:
            metric = self.searcher.metric
            metrics = [metric] if isinstance(metric, str) else list(metric or [])
            if result and any(result.get(m) is None for m in metrics):
                # Stopped before it had every objective (no accuracy in SSL epochs): no result
                # makes Optuna record it PRUNED (FAIL on error) instead of refusing the value.
                result = None
            if result and result.get(STOPPED_KEY) is not None:
                # Stopped early by the scheduler: its partial values (a short latency) would
                # look like a fast, good point; no result makes Optuna record it PRUNED.
                result = None
            self.searcher.on_trial_complete(trial_id, result=result, error=error)

    # Ray saves wrappers (anything with `.searcher`) by get_state/set_state and the innermost
    # searcher separately, so only our own bookkeeping goes here.
    def get_state(self) -> dict[str, Any]:
        return {"pending": list(self.pending), "baseline_trials": dict(self.baseline_trials)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.pending, self.baseline_trials = state["pending"], state["baseline_trials"]

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)


# Set by a resuming driver before Ray unpickles its searcher: the experiment folder being
# resumed, whose optuna.db the unpickled study must use (see ExperimentStorage).
_resume_dir: Path | None = None


class ExperimentStorage(optuna.storages.RDBStorage):
    """The study's storage; unpickled in a resuming driver, it opens that experiment's db.

    Ray pickles the searcher whole (in `tuner.pkl` and its searcher state), storage URL, an
    absolute path, included; unpickling an RDBStorage connects to that URL at once. A moved
    experiment would then fail to resume, or write into the copy it was moved from.
    """

    def __setstate__(self, state: dict[Any, Any]) -> None:
        if _resume_dir is not None:
            state = {**state, "url": study_url(_resume_dir)}
        super().__setstate__(state)


def reopen_in(experiment_dir: Path | None) -> None:
    """Make storages unpickled from now on use `experiment_dir/optuna.db` (None: as pickled)."""
    global _resume_dir
    _resume_dir = experiment_dir


def resumed_in() -> Path | None:
    """The experiment folder a resuming driver runs in (set by `reopen_in`), else None."""
    return _resume_dir


def study_storage(experiment_dir: Path) -> optuna.storages.RDBStorage:
    """The experiment's study lives in `<experiment>/optuna.db` (optuna-dashboard opens it)."""
    return ExperimentStorage(study_url(experiment_dir))


def experiment_study(experiment_dir: Path) -> optuna.Study:
    """The one study in `<experiment>/optuna.db`, whatever the folder is called now."""
    storage = study_storage(experiment_dir)
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


class ExperimentSearch(OptunaSearch):
    """Ray's OptunaSearch that leaves no study trial behind after a killed driver.

    A driver killed between Optuna's `ask` and Ray's next snapshot of the searcher leaves
    study trials RUNNING that the restored searcher never heard of. It hands those out first
    (their parameters were already sampled), so every study trial ends up as one Ray trial
    and `optuna.db` agrees with Ray.
    """

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        study = optuna_search_study(self)
        assert study is not None  # restore() has just loaded it
        known = {t.number for t in optuna_search_trials(self).values()}
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        self.orphans = [optuna_trial_id(t) for t in running if t.number not in known]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        orphans = getattr(self, "orphans", [])
        trials = optuna_search_trials(self)
        if orphans and trial_id not in trials:
            trials[trial_id] = optuna.Trial(optuna_search_study(self), orphans.pop(0))
        return super().suggest(trial_id)


def build_searcher(space: SearchSpace, experiment_dir: Path, study_name: str) -> Searcher:
    """Both objectives on the searcher (never on TuneConfig), the space as Optuna distributions."""
    storage = study_storage(experiment_dir)
    optuna_search = ExperimentSearch(
        space=optuna_space(space),
        metric=[o.metric for o in space.objectives],
        mode=[GOAL_TO_MODE[o.goal] for o in space.objectives],
        sampler=make_sampler(space.sampler, space.seed),
        study_name=study_name,
        storage=storage,
    )
    study = optuna.load_study(study_name=study_name, storage=storage)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and what dashboards show
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o.metric for o in space.objectives])
    wrapped = BaselinesFirst(optuna_search, baseline_configs(space))
    return ConcurrencyLimiter(wrapped, max_concurrent=space.max_concurrent)
