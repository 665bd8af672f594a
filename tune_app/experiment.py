"""The experiment controller: one Ray session, and one function that runs every phase.

An experiment is a search phase (Optuna's suggestions and the baselines, in the experiment's
Ray folder) followed by confirmation phases (a fixed list of configurations per extra seed, in
`confirm/`, `confirm-2/`, ... inside it). `ray_session` is the one place that starts and stops
Ray; `new_phase` builds the Tuner of any phase (same trainable, failure, checkpoint, actor,
callback and progress settings), `resume_phase` restores one. What to confirm is chosen by
`tune_app.confirm`; this module only runs it.

A phase folder holding an experiment snapshot has started; it has finished when every trial in
it ended.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from search_spaces import SearchSpace
from tune_app import confirm, progress, results
from tune_app.checkpoints import put_back_deleted_checkpoints
from tune_app.driver import check_resources, start_ray
from tune_app.location import Location, has_snapshot
from tune_app.orchestrate import (
    MAX_FAILURES,
    callbacks,
    make_trainable,
    slots,
    step_costs,
    trial_dirname,
)
from tune_app.scheduler import build_scheduler
from tune_app.searcher import build_searcher, experiment_study, reopen_in
from tune_app.settings import dump_yaml, say

if TYPE_CHECKING:
    from tune_app.calibration import Tables

PHASE_DIR = "confirm"  # the first confirmation phase's Ray folder inside the experiment's
ENDED = ("TERMINATED", "ERROR")


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Join `address` or start a private Ray for the block; stop it after if we started it.

    Also forgets where a resumed study was reopened, so a later session in this process starts
    clean.
    """
    started = start_ray(address)
    try:
        yield
    finally:
        reopen_in(None)
        if started:
            ray.shutdown()


@dataclass(frozen=True)
class Phase:
    """One Ray Tune experiment of an experiment: where it runs and what hands out its trials.

    Attributes:
        folder: its Ray folder (a path or a URI); the search phase's is the experiment's.
        label: "search" or "confirmation" (the progress display's name for it).
        searcher: what suggests each trial's config.
        num_samples: how many trials it runs.
        scheduler: what may stop trials early (None: Ray's FIFO).
        confirm_count: a confirmation phase's trials, for the progress display.
    """

    folder: str
    label: str
    searcher: Searcher
    num_samples: int
    scheduler: TrialScheduler | None = None
    confirm_count: int | None = None


def new_phase(
    space: SearchSpace,
    where: Location,
    phase: Phase,
    wandb_mode: str,
    costs: Tables | None,
    verbose: bool = False,
) -> tune.Tuner:
    """The Tuner of any phase: the settings every phase shares, and the phase's own."""
    parent, name = phase.folder.rsplit("/", 1)
    earlier = where.local if phase.label == "confirmation" else None
    reporter = progress.reporter(
        space, phase.label, verbose, costs, slots(space), earlier, phase.confirm_count
    )
    return tune.Tuner(
        make_trainable(space, costs),
        tune_config=tune.TuneConfig(
            search_alg=phase.searcher,
            scheduler=phase.scheduler,  # pickled in tuner.pkl: --resume gets it back
            num_samples=phase.num_samples,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=parent,
            verbose=1,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            progress_reporter=reporter,
            callbacks=callbacks(space, where.local, wandb_mode),
        ),
    )


def resume_phase(space: SearchSpace, folder: str, costs: Tables | None) -> tune.Tuner:
    """The Tuner of a phase that started before, from its folder.

    Errored trials already had their retries and Optuna has seen them fail; resuming them
    would leave the study and Ray's concurrency limit out of step. A checkpoint Ray deleted
    just before the last driver was killed is put back first (`tune_app.checkpoints`).
    """
    for line in put_back_deleted_checkpoints(folder):
        say(f"tune-app search: {line}")
    return tune.Tuner.restore(
        folder, make_trainable(space, costs), resume_unfinished=True, resume_errored=False
    )


def search_phase(space: SearchSpace, where: Location) -> Phase:
    """The first phase: the baselines, then Optuna's suggestions, under the space's scheduler."""
    total = space.num_samples + len(space.baseline_pipelines) * len(space.baseline_seeds)
    return Phase(
        folder=where.ray,
        label="search",
        searcher=build_searcher(space, where.local, study_name=where.name),
        num_samples=total,
        scheduler=build_scheduler(space),
    )


def confirmation_phase(space: SearchSpace, folder: str, configs: list[dict[str, Any]]) -> Phase:
    """A phase over exactly `configs` (one trial each); Optuna's study never sees them."""
    return Phase(
        folder=folder,
        label="confirmation",
        searcher=ConcurrencyLimiter(FixedConfigs(configs), max_concurrent=space.max_concurrent),
        num_samples=len(configs),
        confirm_count=len(configs),
    )


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


def run_search(
    space: SearchSpace,
    where: Location,
    *,
    address: str | None,
    resume: bool,
    wandb_mode: str = "disabled",
    verbose: bool = False,
) -> int:
    """The search phase (started or resumed), then its confirmation phases; the exit code."""
    with ray_session(address):
        check_resources(space)
        costs = step_costs(space, where.local)
        if resume:
            say(f"tune-app search: resuming {where.ray}")
            # The interrupted run's table is stale from now on: analyze/export read Ray's own
            # files while this run lives, and finish() writes the table anew.
            reopen_in(where.local)  # the study in this folder's optuna.db, wherever it started
            tuner = resume_phase(space, where.ray, costs)
            where.remove(results.TABLE)  # only once the restore worked: a failed one keeps it
            # a confirmation phase first started now must log as the search phase does
            wandb_mode = restored_wandb_mode(tuner)
        else:
            write_space(space, where)
            say(f"tune-app search: {space.name} -> {where.ray}")
            tuner = new_phase(space, where, search_phase(space, where), wandb_mode, costs, verbose)
        tuner.fit()
        # Once the sampled trials all ended: confirm (or resume `tune-app confirm`'s phases).
        if (space.confirm_top_k or phase_folders(where)) and not unfinished(where.ray):
            run_confirmations(
                space, where, space.confirm_top_k, space.confirm_seeds, wandb_mode, costs, verbose
            )
        return finish(space, where)


def run_confirm(
    space: SearchSpace,
    where: Location,
    top_k: int,
    seeds: Sequence[int],
    wandb_mode: str,
    verbose: bool = False,
) -> int:
    """`tune-app confirm` on a finished search: the confirmation phases alone; the exit code."""
    with ray_session(None):
        costs = step_costs(space, where.local)
        run_confirmations(space, where, top_k, seeds, wandb_mode, costs, verbose)
        return finish(space, where)


def run_confirmations(
    space: SearchSpace,
    where: Location,
    top_k: int,
    seeds: Sequence[int],
    wandb_mode: str,
    costs: Tables | None,
    verbose: bool = False,
) -> None:
    """Resume every unfinished confirmation phase, then start one for what is left to confirm.

    The choice reads every trial of the experiment (search phase and earlier confirmation
    phases), so a (configuration, seed) pair never runs twice.
    """
    started = phase_folders(where)
    for folder in filter(unfinished, started):
        say(f"tune-app: resuming confirmation trials in {folder}")
        resume_phase(space, folder, costs).fit()
        if unfinished(folder):  # interrupted again: --resume takes it from here
            return
    table = pd.DataFrame(collect(space, where))
    configs = confirm.plan(table, space, top_k, seeds) if top_k and seeds else []
    if not configs:
        return
    folder = f"{where.ray}/{phase_name(len(started) + 1)}"
    say(f"tune-app: {len(configs)} confirmation trial(s) -> {folder}")
    phase = confirmation_phase(space, folder, configs)
    new_phase(space, where, phase, wandb_mode, costs, verbose).fit()


def phase_name(k: int) -> str:
    """Folder of the k-th confirmation phase (1-based): confirm, confirm-2, confirm-3, ..."""
    return PHASE_DIR if k == 1 else f"{PHASE_DIR}-{k}"


def phase_folders(where: Location) -> list[str]:
    """Ray folders of the confirmation phases that have started, in order."""
    found, k = [], 1
    while has_snapshot(f"{where.ray}/{phase_name(k)}"):
        found.append(f"{where.ray}/{phase_name(k)}")
        k += 1
    return found


def unfinished(folder: str) -> bool:
    """Whether a trial of the Ray experiment in `folder` has not ended (paused, pending...)."""
    return any(t.status not in ENDED for t in tune.ExperimentAnalysis(folder).trials)


def write_space(space: SearchSpace, where: Location) -> None:
    """space.yaml, uploaded at once: a remote experiment is resumable from its first moment."""
    where.local.mkdir(parents=True, exist_ok=True)
    (where.local / "space.yaml").write_text(dump_yaml(space.to_dict()))
    where.upload(("space.yaml",))


def restored_wandb_mode(tuner: tune.Tuner) -> str:
    """The W&B mode of a restored search: that of the `TrialLogger` Ray brought back from
    `tuner.pkl` ("disabled" without one).

    `--resume` takes no `--wandb`: the search phase logs through the restored callbacks, and a
    confirmation phase that starts in this session builds its own, which must match them (same
    mode, so the confirmation trials join the experiment's W&B group like a first run's would).
    """
    from tune_app._internals import restored_run_config
    from tune_app.wandb_log import TrialLogger

    run_config = restored_run_config(tuner)
    found = [c for c in run_config.callbacks or () if isinstance(c, TrialLogger)]
    return found[0].mode if found else "disabled"


def collect(space: SearchSpace, where: Location) -> list[dict[str, Any]]:
    """One row per trial Ray knows of, from Ray's experiment folder and those of the
    confirmation phases inside it (works after a crash too)."""
    trials = []
    for folder in [where.ray, *phase_folders(where)]:
        trials += tune.ExperimentAnalysis(folder).trials
    rows = []
    for t in trials:
        error = t.get_error() if t.status == Trial.ERROR else None
        rows.append(
            results.trial_row(
                space,
                t.trial_id,
                t.status,
                dict(t.config),
                t.last_result or {},
                str(error) if error else None,
            )
        )
    return rows


def close_stale_study_trials(where: Location) -> None:
    """Mark FAIL the study trials still RUNNING once every Ray trial has ended.

    Only for a search that ran to its end: after an interrupt, RUNNING study trials are the
    paused trials `--resume` will finish and tell (failing them would make that tell fail).
    """
    import optuna

    study = experiment_study(where.local)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)


def finish(space: SearchSpace, where: Location) -> int:
    """trials.parquet, the closing summary, the upload of our files; the exit code."""
    experiment = where.local
    rows = collect(space, where)
    if not rows:
        say("tune-app search: no trial ran")
        return 1
    table = results.write_table(rows, experiment / results.TABLE)
    left = table[~table["status"].isin(ENDED)]
    if not len(left):
        close_stale_study_trials(where)
    where.upload()
    say("\n" + results.summary_text(table, experiment))
    if sorted((experiment / "wandb").glob("offline-run-*")):
        say(f"  wandb sync {experiment / 'wandb'}/offline-run-*   # upload the W&B runs")
    if len(left):
        say(
            f"\n{len(left)} trial(s) unfinished; continue with:\n  tune-app search "
            f"--name {where.name} --storage-path {where.ray_parent} --resume"
        )
        return 130
    return 0 if table["complete"].any() else 1
