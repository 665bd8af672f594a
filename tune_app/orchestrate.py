"""Ray Tune side of a search: build or restore the Tuner, run it, record the trials."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune
from ray.tune.experiment import Trial

from search_spaces import SearchSpace
from trainers import SetupError
from tune_app import progress, results
from tune_app.driver import (
    check_resources,
    fixed_settings,
    say,
    start_ray,
    write_space,
)
from tune_app.location import Location
from tune_app.scheduler import build_scheduler
from tune_app.searcher import build_searcher, experiment_study, reopen_in
from tune_app.settings import UserInputError
from tune_app.trial import trainable

if TYPE_CHECKING:
    from tune_app.calibration import Tables

MAX_FAILURES = 2  # a crashed trial is retried from its last checkpoint this many times
# Test-only: crash each trial once after epoch N (the marker file makes it "once").
CRASH_AT_EPOCH_ENV, CRASH_MARKER_ENV = "TUNE_APP_TEST_CRASH_AT_EPOCH", "TUNE_APP_TEST_CRASH_MARKER"


def trial_dirname(trial: Trial) -> str:
    return trial.trial_id  # short, stable folder names inside the experiment


def injected_fault() -> tuple[int, str] | None:
    at, marker = os.environ.get(CRASH_AT_EPOCH_ENV), os.environ.get(CRASH_MARKER_ENV)
    return (int(at), marker) if at and marker else None


def make_trainable(space: SearchSpace, step_costs: Tables | None = None) -> Any:
    fn = tune.with_parameters(
        trainable, fixed=fixed_settings(space), fault=injected_fault(), step_costs=step_costs
    )
    return tune.with_resources(fn, {"cpu": space.cpu, "gpu": space.gpu})


def slots(space: SearchSpace) -> int:
    """How many trials run at once: the concurrency limit, or fewer where resources end."""
    resources = ray.cluster_resources()
    fit = [resources.get("CPU", 0) / space.cpu] if space.cpu else []
    fit += [resources.get("GPU", 0) / space.gpu] if space.gpu else []
    return max(1, min([space.max_concurrent, *(int(f) for f in fit)]))


def trial_nodes(space: SearchSpace) -> list[str]:
    """Ids of the alive nodes whose resources can hold one trial (the others never run one)."""
    return sorted(
        n["NodeID"]
        for n in ray.nodes()
        if n.get("Alive")
        and n["Resources"].get("CPU", 0) >= space.cpu
        and n["Resources"].get("GPU", 0) >= space.gpu
    )


def pinned(node: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node, soft=False)


def gather(refs: list[Any]) -> list[Any]:
    """`ray.get`, raising a task's own error without Ray's wrapper."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, Exception):
            raise e.cause from None
        raise


def probe_node_types(space: SearchSpace) -> dict[str, str]:
    """{node id: hardware key} of every node a trial can run on, from a tiny task pinned to
    each. It takes no CPU (it must not wait behind anything) but the trial's GPU share, so it
    sees the device a trial would."""
    from trainers.calibrate import run_hardware_key
    from tune_app.calibration import calibration_config
    from tune_app.trial import on_slot

    config = calibration_config(fixed_settings(space))
    task = ray.remote(num_cpus=0, num_gpus=space.gpu, max_retries=0)(on_slot(run_hardware_key))
    nodes = trial_nodes(space)
    keys = gather([task.options(scheduling_strategy=pinned(n)).remote(config) for n in nodes])
    return dict(zip(nodes, keys, strict=True))


def on_trial_slots(space: SearchSpace) -> Callable[..., list[Any]]:
    """`trainers.calibrate.calibrate` on each of the given nodes at once, as Ray tasks holding
    one trial's resources: where a trial would run (the driver of a cluster may have no GPU, or
    another CPU). Nodes of different types are different machines, so none slows another."""
    from trainers.calibrate import calibrate
    from tune_app.trial import on_slot

    task = ray.remote(num_cpus=space.cpu, num_gpus=space.gpu, max_retries=0)(on_slot(calibrate))

    def measure(nodes: list[str], *args: Any, **kwargs: Any) -> list[Any]:
        return gather([task.options(scheduling_strategy=pinned(n)).remote(*args, **kwargs)
                       for n in nodes])  # fmt: skip

    return measure


def step_costs(space: SearchSpace, experiment: Path) -> Tables:
    """The experiment's step-cost tables by node type: one measured now for each node type of
    the cluster without one (before any trial runs, so nothing else competes), the others read
    back from calibration.json (--resume, tune-app confirm)."""
    from tune_app.calibration import busy_warnings, experiment_calibrations, node_types, tables

    fixed = fixed_settings(space)
    try:
        types = node_types(probe_node_types(space))
        calibrations = experiment_calibrations(
            space, fixed, experiment, types, on_trial_slots(space), before=calibrating
        )
    except (SetupError, ValueError) as e:  # missing data or device, unreadable calibration.json
        raise UserInputError(f"{space.source}: step-cost calibration: {e}") from e
    for warning in busy_warnings(calibrations):
        say(f"tune-app search: {warning}")
    return tables(calibrations)


def calibrating(keys: list[str]) -> None:
    say(f"tune-app search: calibrating step costs (calibration.json) for {len(keys)} node "
        f"type(s): {'; '.join(keys)}")  # fmt: skip


def callbacks(space: SearchSpace, experiment: Path, wandb_mode: str) -> list[tune.Callback]:
    if wandb_mode == "disabled":
        return []
    from tune_app.wandb_log import TrialLogger

    w = space.wandb
    return [
        TrialLogger(
            fixed=fixed_settings(space),
            experiment=experiment,
            mode=wandb_mode,
            project=w.get("project") or "tune-app",
            group=w.get("group") or experiment.name,
            entity=w.get("entity"),
            tags=tuple(w.get("tags") or ()),
        )
    ]


def new_tuner(
    space: SearchSpace,
    where: Location,
    wandb_mode: str,
    costs: Tables | None = None,
    verbose: bool = False,
) -> tune.Tuner:
    total = space.num_samples + len(space.baseline_pipelines) * len(space.baseline_seeds)
    reporter = progress.reporter(space, "search", verbose, costs, slots(space))
    return tune.Tuner(
        make_trainable(space, costs),
        tune_config=tune.TuneConfig(
            search_alg=build_searcher(space, where.local, study_name=where.name),
            scheduler=build_scheduler(space),  # pickled in tuner.pkl: --resume gets it back
            num_samples=total,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=where.name,
            storage_path=where.ray_parent,
            verbose=1,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            progress_reporter=reporter,
            callbacks=callbacks(space, where.local, wandb_mode),
        ),
    )


def collect(space: SearchSpace, where: Location) -> list[dict[str, Any]]:
    """One row per trial Ray knows of, from Ray's experiment folder and those of the confirm
    phases inside it (works after a crash too)."""
    from tune_app.confirm import phase_folders

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


def run_search(
    space: SearchSpace,
    where: Location,
    *,
    address: str | None,
    resume: bool,
    wandb_mode: str = "disabled",
    verbose: bool = False,
) -> int:
    started = start_ray(address)
    try:
        check_resources(space)
        costs = step_costs(space, where.local)
        tuner = (
            restore_tuner(space, where, costs)
            if resume
            else start_tuner(space, where, wandb_mode, costs, verbose)
        )
        if resume:  # a confirm phase first started now must log as the search phase does
            wandb_mode = restored_wandb_mode(tuner)
        tuner.fit()
        from tune_app.confirm import phase_folders, run_confirm, unfinished

        # Once the sampled trials all ended: confirm (or resume `tune-app confirm`'s phases).
        if (space.confirm_top_k or phase_folders(where)) and not unfinished(where.ray):
            run_confirm(
                space,
                where,
                top_k=space.confirm_top_k,
                seeds=space.confirm_seeds,
                wandb_mode=wandb_mode,
                costs=costs,
                verbose=verbose,
            )
        return finish(space, where)
    finally:
        reopen_in(None)
        if started:
            ray.shutdown()


def start_tuner(
    space: SearchSpace, where: Location, wandb_mode: str, costs: Tables, verbose: bool = False
) -> tune.Tuner:
    write_space(space, where.local)
    where.upload(("space.yaml",))  # a remote experiment is resumable from its first moment
    say(f"tune-app search: {space.name} -> {where.ray}")
    return new_tuner(space, where, wandb_mode, costs, verbose)


def restore_tuner(space: SearchSpace, where: Location, costs: Tables) -> tune.Tuner:
    say(f"tune-app search: resuming {where.ray}")
    # The interrupted run's table is stale from now on: analyze/export read Ray's own files
    # while this run lives, and finish() writes the table anew.
    reopen_in(where.local)  # the study in this folder's optuna.db, wherever it was started
    tuner = tune.Tuner.restore(
        # Errored trials already had their retries and Optuna has seen them fail; resuming
        # them would leave the study and Ray's concurrency limit out of step.
        where.ray,
        make_trainable(space, costs),
        resume_unfinished=True,
        resume_errored=False,
    )
    where.remove(results.TABLE)  # only once the restore worked: a failed one keeps the table
    return tuner


def restored_wandb_mode(tuner: tune.Tuner) -> str:
    """The W&B mode of a restored search: that of the `TrialLogger` Ray brought back from
    `tuner.pkl` ("disabled" without one).

    `--resume` takes no `--wandb`: the search phase logs through the restored callbacks, and a
    confirm phase that starts in this session builds its own, which must match them (same mode,
    so the confirm trials join the experiment's W&B group like a first run's would).
    """
    from tune_app.wandb_log import TrialLogger

    internal = tuner._local_tuner  # Ray keeps the run config here (no public accessor)
    run_config: Any = (
        internal.get_run_config()
        if internal is not None
        # Ray client (ray://): the tuner lives in an actor on the cluster
        else ray.get(tuner._remote_tuner.get_run_config.remote())  # type: ignore[union-attr]
    )
    found = [c for c in run_config.callbacks or () if isinstance(c, TrialLogger)]
    return found[0].mode if found else "disabled"


def close_stale_study_trials(experiment: Path) -> None:
    """Mark FAIL the study trials still RUNNING once every Ray trial has ended.

    Only for a search that ran to its end: after an interrupt, RUNNING study trials are the
    paused trials `--resume` will finish and tell (failing them would make that tell fail).
    """
    import optuna

    study = experiment_study(experiment)
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
    unfinished = table[~table["status"].isin(["TERMINATED", "ERROR"])]
    if not len(unfinished):
        close_stale_study_trials(experiment)
    where.upload()
    say("\n" + results.summary_text(table, experiment))
    if sorted((experiment / "wandb").glob("offline-run-*")):
        say(f"  wandb sync {experiment / 'wandb'}/offline-run-*   # upload the W&B runs")
    if len(unfinished):
        say(
            f"\n{len(unfinished)} trial(s) unfinished; continue with:\n  tune-app search "
            f"--name {where.name} --storage-path {where.ray_parent} --resume"
        )
        return 130
    return 0 if table["complete"].any() else 1
