"""What a search space is once validated: the dataclasses and the names a space may use.

The YAML shape is in docs/searching.md and docs/internal-interfaces.md; `validate.py`
holds the rules that turn a raw document into these dataclasses.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trainers.config import TrialConfig
from trainers.plan import phase_plan

REPORTED_METRICS = ("val_accuracy", "train_latency_s", "calibrated_latency_s", "train_gflops")
SAMPLERS = ("tpe", "nsga2", "nsga3", "random", "gp")
GOALS = ("maximize", "minimize")
DISTRIBUTIONS = ("uniform", "log_uniform_values", "int_uniform", "q_uniform")
BASELINE_PIPELINES = ("sl", "ssl_sl")
TOP_KEYS = (
    "name",
    "description",
    "trainer",
    "parameters",
    "objectives",
    "search",
    "baselines",
    "resources",
    "wandb",
)
SEARCH_DEFAULTS: dict[str, Any] = {
    "sampler": "tpe",
    "num_samples": 12,
    "max_concurrent": 2,
    "seed": 0,
    "confirm": None,  # {top_k: K, seeds: [...]}: re-run the K best configurations per seed
    "scheduler": None,  # {type: fifo | pareto_halving, grace, eta}: early stopping
}
SCHEDULERS = ("fifo", "pareto_halving")
# pareto_halving: first rung after `grace` supervised epochs, then every `eta` times more.
HALVING_DEFAULTS: dict[str, Any] = {"type": "pareto_halving", "grace": 1, "eta": 3}
BASELINE_DEFAULTS: dict[str, Any] = {"pipelines": ["sl", "ssl_sl"], "seeds": [0]}
RESOURCE_DEFAULTS: dict[str, Any] = {"cpu": 1, "gpu": 0}
WANDB_KEYS = ("project", "entity", "group", "tags")
FIELDS = tuple(f.name for f in dataclasses.fields(TrialConfig))
# Each trial's pipeline and seed come from its role (searched or baseline), never from the space.
RESERVED = {
    "pipeline": "set per trial (mixtraining for searched trials, baselines.pipelines for the rest)",
    "seed": "set per trial by search.seed (searched trials) and baselines.seeds (baselines)",
}


CONTINUOUS = ("uniform", "log_uniform_values", "q_uniform")


def e_mix(m: int, rho: float) -> int:
    """MIX epochs of a plan with m = min(epochs_ssl, epochs_sl) (trainers.plan.phase_plan)."""
    return phase_plan(m, m, rho)[1][1]


class SpaceError(ValueError):
    """A space is unusable. Message: `<file>: <dotted.field>: <what is wrong>; allowed: ...`."""


@dataclass(frozen=True)
class Param:
    """One `parameters:` entry in W&B sweep terms; `distribution` is also categorical|constant."""

    name: str
    distribution: str
    min: float | None = None
    max: float | None = None
    q: float | None = None
    values: tuple[Any, ...] = ()
    value: Any = None

    def candidates(self) -> list[tuple[str, Any]]:
        """(YAML key, value) pairs that bound what can be sampled: min/max, each value, or value."""
        if self.distribution == "categorical":
            return [("values", v) for v in self.values]
        if self.distribution == "constant":
            return [("value", self.value)]
        return [("min", self.min), ("max", self.max)]

    def to_dict(self) -> dict[str, Any]:
        """The YAML form of this entry."""
        if self.distribution == "categorical":
            return {"values": copy.deepcopy(list(self.values))}
        if self.distribution == "constant":
            return {"value": copy.deepcopy(self.value)}
        out = {"distribution": self.distribution, "min": self.min, "max": self.max}
        return out if self.q is None else {**out, "q": self.q}


@dataclass(frozen=True)
class Objective:
    metric: str
    goal: str  # maximize | minimize


@dataclass(frozen=True)
class SearchSpace:
    """A validated space. `source` (the file read) is left out of equality on purpose, so a
    space written to an experiment's space.yaml and read back compares equal."""

    name: str
    description: str
    source: str = field(compare=False)
    trainer: dict[str, Any]
    parameters: dict[str, Param]
    objectives: tuple[Objective, ...]
    sampler: str
    num_samples: int
    max_concurrent: int
    seed: int
    baseline_pipelines: tuple[str, ...]
    baseline_seeds: tuple[int, ...]
    cpu: float
    gpu: float
    wandb: dict[str, Any]
    confirm_top_k: int = 0  # search.confirm.top_k; 0 = no confirmation runs
    confirm_seeds: tuple[int, ...] = ()  # search.confirm.seeds: extra seeds for each of them
    scheduler: dict[str, Any] = field(default_factory=lambda: {"type": "fifo"})  # search.scheduler

    @property
    def constants(self) -> dict[str, Any]:
        """Parameters given as `{value: x}`: fixed for every trial, like `trainer:`."""
        return {n: p.value for n, p in self.parameters.items() if p.distribution == "constant"}

    @property
    def searched(self) -> dict[str, Param]:
        """Parameters the sampler chooses (everything but constants)."""
        return {n: p for n, p in self.parameters.items() if p.distribution != "constant"}

    def mix_epochs_base(self) -> int | None:
        """m = min(epochs_ssl, epochs_sl) when both are fixed and m > 0, else None: then
        `rho` acts only through e_mix = floor(rho * m) (trainers.plan.phase_plan)."""
        if {"epochs_ssl", "epochs_sl"} & set(self.searched):
            return None
        base = self.trial_config({})
        m = min(base.epochs_ssl, base.epochs_sl)
        return m if m > 0 else None

    def rho_steps(self) -> list[float] | None:
        """The values of a continuous `rho` range that give each distinct e_mix once, or None.

        With fixed epochs, rho acts in steps: every rho with the same floor(rho * m) trains
        the same recipe. The searcher is given one value per step instead of the range, so no
        trial is spent on a recipe already run and every step, both ends included (e.g. rho =
        1, the whole budget merged), can be drawn. Each value is the smallest rho of its step
        (k / m), or the range's own minimum for the first step.
        """
        p, m = self.searched.get("rho"), self.mix_epochs_base()
        if p is None or m is None or p.distribution not in CONTINUOUS:
            return None
        first, last = e_mix(m, p.min), e_mix(m, p.max)
        return [float(p.min) if k == first else k / m for k in range(first, last + 1)]

    def no_mix_share(self) -> tuple[float, float] | None:
        """(rho limit, share of MixTraining trials below it) when the search can draw a rho that
        gives no MIX epoch, else None.

        With fixed epochs, e_mix = floor(rho * m) is 0 for rho < 1/m (m = min(epochs_ssl,
        epochs_sl)): such a trial trains exactly as the SSL+SL baseline of its seed. The share
        is of the values the searcher draws from (`rho_steps` for a continuous range). None
        too when epochs are searched or m is 0.
        """
        m = self.mix_epochs_base()
        if m is None:
            return None
        p = self.searched.get("rho")
        if p is None:
            values = [self.trial_config({}).rho]
        else:
            values = self.rho_steps() or list(p.values) or list(range(int(p.min), int(p.max) + 1))
        share = sum(e_mix(m, float(v)) == 0 for v in values) / len(values)
        return (1.0 / m, share) if share > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The resolved YAML shape (defaults filled in); reading it back gives an equal space."""
        return {
            "name": self.name,
            "description": self.description,
            "trainer": copy.deepcopy(self.trainer),
            "parameters": {n: p.to_dict() for n, p in self.parameters.items()},
            "objectives": [dataclasses.asdict(o) for o in self.objectives],
            "search": {
                "sampler": self.sampler,
                "num_samples": self.num_samples,
                "max_concurrent": self.max_concurrent,
                "seed": self.seed,
                **(
                    {"confirm": {"top_k": self.confirm_top_k, "seeds": list(self.confirm_seeds)}}
                    if self.confirm_top_k
                    else {}
                ),
                **(
                    {"scheduler": copy.deepcopy(self.scheduler)}
                    if self.scheduler["type"] != "fifo"
                    else {}
                ),
            },
            "baselines": {
                "pipelines": list(self.baseline_pipelines),
                "seeds": list(self.baseline_seeds),
            },
            "resources": {"cpu": self.cpu, "gpu": self.gpu},
            "wandb": copy.deepcopy(self.wandb),
        }

    def trial_config(
        self, sampled: dict[str, Any], pipeline: str = "mixtraining", seed: int | None = None
    ) -> TrialConfig:
        """One trial's config: trainer settings, constants, sampled values, pipeline and seed.

        Args:
            sampled: values the sampler chose (empty for baselines).
            pipeline: mixtraining, or a baseline pipeline.
            seed: the trial seed; None means the space's search seed.

        Raises:
            trainers.config.ConfigError: a value is illegal (named in the message).
        """
        values = {**self.trainer, **self.constants, **sampled}
        values.update(pipeline=pipeline, seed=self.seed if seed is None else seed)
        return TrialConfig.from_dict(values)
