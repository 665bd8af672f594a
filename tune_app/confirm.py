"""Confirmation trials: the best single-seed MixTraining configurations run again per seed.

After the sampled trials end, the K best configurations of the single-seed front (front first,
within it by hypervolume contribution, filled from the next fronts) are run again with each
extra seed, as Ray trials of the same experiment with `role: confirm`.

They run as a second Ray Tune experiment inside the experiment folder (`confirm/`, then
`confirm-2/`, ... for later `tune-app confirm` calls), whose searcher hands out a fixed list of
configurations: Optuna's study never sees them (they are not new points of its space), and
each phase is checkpointed and resumable by `Tuner.restore` like the search itself. A phase
folder holding `tuner.pkl` has started; it has finished when every trial in it ended.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from ray.tune.search import Searcher

from analysis.configs import canonical
from analysis.hypervolume import hypervolume, reference_point
from analysis.pareto import pareto_mask, to_minimize
from search_spaces import SearchSpace
from tune_app.driver import say
from tune_app.location import Location, is_uri

PHASE_DIR = "confirm"  # the first phase's Ray folder inside the experiment's
ENDED = ("TERMINATED", "ERROR")


def phase_name(k: int) -> str:
    """Folder of the k-th confirm phase (1-based): confirm, confirm-2, confirm-3, ..."""
    return PHASE_DIR if k == 1 else f"{PHASE_DIR}-{k}"


def hv_contributions(costs: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Each point's exclusive hypervolume: the volume lost without it. costs: [N, M]."""
    total = hypervolume(costs, ref)
    keep = np.ones(len(costs), dtype=bool)
    out = np.empty(len(costs))
    for i in range(len(costs)):
        keep[i] = False
        out[i] = total - hypervolume(costs[keep], ref)
        keep[i] = True
    return out


def rank_points(values: np.ndarray, goals: Sequence[str]) -> list[int]:
    """Indices of `values` [N, M] best first: non-dominated fronts in order, each front by
    hypervolume contribution (larger first; ties keep input order)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return []
    ref = reference_point(to_minimize(values, goals))
    left, order = np.arange(len(values)), []
    while len(left):
        front = left[pareto_mask(values[left], goals)]
        gain = hv_contributions(to_minimize(values[front], goals), ref)
        order += front[np.argsort(-gain, kind="stable")].tolist()
        left = np.setdiff1d(left, front)
    return order


def best_configs(table: pd.DataFrame, space: SearchSpace, top_k: int) -> pd.DataFrame:
    """The `top_k` best complete single-seed (`role: search`) MixTraining configurations.

    One row per configuration (its first trial); ranked by `rank_points` on the objectives.
    """
    metrics = [o.metric for o in space.objectives]
    done = table[(table["role"] == "search") & table["complete"]].dropna(subset=metrics)
    done = done.drop_duplicates("config_id")
    order = rank_points(done[metrics].to_numpy(dtype=float), [o.goal for o in space.objectives])
    return done.iloc[order[:top_k]]


def plan(
    table: pd.DataFrame, space: SearchSpace, top_k: int, seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """The confirm trials to run: each best configuration with each seed it has not yet run.

    Returns:
        Ray configs: the configuration's searched knobs, `pipeline`, `seed`, `role: confirm`.
    """
    ran = set(zip(table["config_id"], table["seed"].map(canonical), strict=True))
    knobs = list(space.searched)
    configs = []
    for _, row in best_configs(table, space, top_k).iterrows():
        for seed in seeds:
            if (row["config_id"], seed) not in ran:
                config = {k: canonical(row[k]) for k in knobs}
                configs.append(
                    {**config, "pipeline": "mixtraining", "seed": seed, "role": "confirm"}
                )
    return configs


def has_snapshot(folder: str) -> bool:
    """Whether Ray wrote an experiment snapshot in `folder` (a path or a URI).

    A phase killed before its first snapshot has nothing to restore: it counts as not
    started, and the next run starts it afresh in the same folder.
    """
    import pyarrow.fs

    if is_uri(folder):
        fs, path = pyarrow.fs.FileSystem.from_uri(folder)
    else:
        fs, path = pyarrow.fs.LocalFileSystem(), folder
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    return any(i.base_name.startswith("experiment_state-") for i in infos)


def phase_folders(where: Location) -> list[str]:
    """Ray folders of the confirm phases that have started, in order."""
    found, k = [], 1
    while has_snapshot(f"{where.ray}/{phase_name(k)}"):
        found.append(f"{where.ray}/{phase_name(k)}")
        k += 1
    return found


class FixedConfigs(Searcher):
    """Hands out a fixed list of configs once each, then FINISHED; no model, no study.

    Its state (the configs and how many were handed out) is saved with Ray's experiment
    snapshots, so a restored phase goes on where it stopped.
    """

    def __init__(self, configs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.configs, self.given = [dict(c) for c in configs], 0

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.given >= len(self.configs):
            # Ray's "no more trials" sentinel is a string its own annotation leaves out
            return Searcher.FINISHED  # type: ignore[return-value]
        self.given += 1
        return dict(self.configs[self.given - 1])

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Nothing to learn: the list is fixed."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"configs": self.configs, "given": self.given}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.configs, self.given = state["configs"], state["given"]


def phase_tuner(
    space: SearchSpace,
    where: Location,
    folder: str,
    configs: list[dict[str, Any]],
    wandb_mode: str,
    costs: dict[str, dict[str, float]] | None,
    verbose: bool = False,
) -> Any:
    """A Tuner over exactly `configs` (one trial each), in `folder` inside the experiment."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from tune_app import orchestrate as o
    from tune_app import progress

    parent, name = folder.rsplit("/", 1)
    return tune.Tuner(
        o.make_trainable(space, costs),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(
                FixedConfigs(configs), max_concurrent=space.max_concurrent
            ),
            num_samples=len(configs),
            reuse_actors=True,
            trial_dirname_creator=o.trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=parent,
            verbose=1,
            failure_config=tune.FailureConfig(max_failures=o.MAX_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=o.callbacks(space, where.local, wandb_mode),
            progress_reporter=progress.reporter(
                space, "confirmation", verbose, costs, o.slots(space), where.local, len(configs)
            ),
        ),
    )


def unfinished(folder: str) -> bool:
    """Whether a trial of the Ray experiment in `folder` has not ended (paused, pending...)."""
    from ray import tune

    return any(t.status not in ENDED for t in tune.ExperimentAnalysis(folder).trials)


def run_confirm(
    space: SearchSpace,
    where: Location,
    *,
    top_k: int,
    seeds: Sequence[int],
    wandb_mode: str,
    costs: dict[str, dict[str, float]] | None,
    verbose: bool = False,
) -> None:
    """Resume every unfinished confirm phase, then start one for what is left to confirm.

    Needs a running Ray. The ranking reads every trial of the experiment (search phase and
    earlier confirm phases), so a (configuration, seed) pair never runs twice.
    """
    from ray import tune

    from tune_app import orchestrate as o

    started = phase_folders(where)
    for folder in filter(unfinished, started):
        say(f"tune-app: resuming confirmation trials in {folder}")
        tune.Tuner.restore(folder, o.make_trainable(space, costs), resume_unfinished=True).fit()
        if unfinished(folder):  # interrupted again: --resume takes it from here
            return
    rows = o.collect(space, where)
    configs = plan(pd.DataFrame(rows), space, top_k, seeds) if top_k and seeds else []
    if not configs:
        return
    folder = f"{where.ray}/{phase_name(len(started) + 1)}"
    say(f"tune-app: {len(configs)} confirmation trial(s) -> {folder}")
    phase_tuner(space, where, folder, configs, wandb_mode, costs, verbose).fit()


def confirm_command(
    experiment: str,
    top_k: int | None,
    seeds: tuple[int, ...],
    wandb: str | None = None,
    verbose: bool = False,
) -> int:
    """Body of `tune-app confirm`: confirmation trials for a finished experiment (resumable).

    Defaults come from the space's `search.confirm`; a (configuration, seed) pair already run
    is not run again, and an interrupted confirm phase is resumed first.
    """
    from pathlib import Path

    from search_spaces import load_space
    from tune_app.claim import claim
    from tune_app.driver import set_ray_env
    from tune_app.location import locate
    from tune_app.settings import UserInputError

    folder = Path(experiment).expanduser().resolve()
    if not (folder / "space.yaml").is_file() or not (folder / "tuner.pkl").is_file():
        raise UserInputError(f"{experiment}: not a tune-app experiment (no space.yaml/tuner.pkl)")
    space = load_space(str(folder / "space.yaml"))
    top_k = space.confirm_top_k if top_k is None else top_k
    seeds = tuple(seeds) or space.confirm_seeds
    if top_k < 1 or not seeds:
        raise UserInputError(
            "confirm: --top-k K >= 1 and --seeds S ... are needed (the space has no search.confirm)"
        )
    where = locate(str(folder.parent), folder.name)
    with claim(where.local, "experiment"):
        if unfinished(where.ray):
            raise UserInputError(
                f"{experiment}: the search has unfinished trials; finish it first with "
                f"tune-app search --name {where.name} --storage-path {where.ray_parent} --resume"
            )
        set_ray_env()
        from tune_app.wandb_log import resolve_mode

        return run_confirm_command(space, where, top_k, seeds, resolve_mode(wandb), verbose)


def run_confirm_command(
    space: SearchSpace,
    where: Location,
    top_k: int,
    seeds: Sequence[int],
    wandb_mode: str,
    verbose: bool = False,
) -> int:
    """Start (or join) Ray, run the confirm phases, write trials.parquet; the exit code."""
    import ray

    from tune_app import orchestrate as o
    from tune_app.searcher import reopen_in

    started = o.start_ray(None)
    try:
        costs = o.step_costs(space, where.local)
        run_confirm(
            space,
            where,
            top_k=top_k,
            seeds=seeds,
            wandb_mode=wandb_mode,
            costs=costs,
            verbose=verbose,
        )
        return o.finish(space, where)
    finally:
        reopen_in(None)
        if started:
            ray.shutdown()
