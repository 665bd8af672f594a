"""`tune-app search`: a Ray Tune + Optuna multi-objective search over one YAML space.

Everything is validated before Ray starts or anything is written: the space, the dataset, and
(once Ray is up, still before writing) whether the cluster can hold one trial's resources.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from search_spaces import SearchSpace, SpaceError, load_space
from tune_app.location import Location, locate
from tune_app.settings import UserInputError, parse_set, to_json

# Quiet, offline Ray (shared/NOTES.md). The old output engine is what honours CLIReporter's
# trimmed columns.
# Every epoch checkpoints, which makes Ray snapshot the experiment often by design (so a
# restore finds the newest checkpoint); its warning about that is noise for a small search.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AUTH_MODE": "disabled",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Starting a trial's W&B logging actor takes about a second, once per trial; Ray's
    # default 0.5 s "slow callback" warning would repeat that for every trial.
    "TUNE_WARN_THRESHOLD_S": "5",
}
PARAM_COLUMNS = ("pipeline", "seed", "alpha", "rho", "lam", "anneal")
METRIC_COLUMNS = ("epoch", "phase", "val_accuracy", "train_latency_s")


def resolve_space(
    space_arg: str, sets: tuple[str, ...], num_samples: int | None, max_concurrent: int | None
) -> SearchSpace:
    overrides = parse_set(sets)
    if num_samples is not None:
        overrides["search.num_samples"] = num_samples
    if max_concurrent is not None:
        overrides["search.max_concurrent"] = max_concurrent
    try:
        return load_space(space_arg, overrides)
    except SpaceError as e:
        raise UserInputError(str(e)) from e


def fixed_settings(space: SearchSpace) -> dict[str, Any]:
    """Every TrialConfig field a trial starts from; the searcher's suggestion overrides some."""
    fixed = space.trial_config({}, "mixtraining", None).to_dict()
    if "num_threads" not in space.trainer:  # one torch thread per CPU the trial was given
        fixed["num_threads"] = max(1, int(space.cpu))
    if space.gpu == 0 and "device" not in space.trainer:
        # Ray 2.60 no longer hides GPUs from a trial given none: without this, "CPU" trials
        # would all land on cuda:0 unscheduled.
        fixed["device"] = "cpu"
    return fixed


def dry_run_plan(space: SearchSpace, where: Location) -> dict[str, Any]:
    from tune_app.searcher import baseline_configs

    return {
        "experiment": where.ray,
        "local_files": str(where.local),
        "space": space.to_dict(),
        "objectives": [{"metric": o.metric, "goal": o.goal} for o in space.objectives],
        "sampler": {"name": space.sampler, "seed": space.seed},
        "resources": {"cpu": space.cpu, "gpu": space.gpu, "max_concurrent": space.max_concurrent},
        "trials": baseline_configs(space)
        + [
            {
                "pipeline": "mixtraining",
                "count": space.num_samples,
                "searched": sorted(space.parameters),
            }
        ],
    }


def check_data(space: SearchSpace) -> None:
    """Load the data once now so a missing dataset is bad input, not N failed trials."""
    import torch

    from trainers.pipeline import load_splits

    try:
        load_splits(space.trial_config({}, "mixtraining", None), torch.device("cpu"))
    except ValueError as e:
        raise UserInputError(f"{space.source}: trainer.dataset: {e}") from e


def check_resources(space: SearchSpace) -> None:
    """One trial must fit on one node of the cluster Ray is connected to."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    best_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    best_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    if space.cpu > best_cpu or space.gpu > best_gpu:
        raise UserInputError(
            f"{space.source}: resources: a trial asks for cpu={space.cpu}, gpu={space.gpu} but "
            f"the largest node has {best_cpu:g} CPUs and {best_gpu:g} GPUs"
        )
    from tune_app.gpu_fit import check_gpu_memory

    check_gpu_memory(space)  # each trial's estimated peak memory against its GPU share


def set_ray_env() -> None:
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)


def start_ray(address: str | None) -> bool:
    """Join `address` or start a local Ray; returns True when we started it (and must stop it)."""
    set_ray_env()
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address=address, include_dashboard=False, configure_logging=True, logging_level="WARNING"
    )
    return True


def search_command(
    space_arg: str | None,
    *,
    name: str | None,
    storage_path: str | None,
    num_samples: int | None,
    max_concurrent: int | None,
    address: str | None,
    wandb: str | None,
    sets: tuple[str, ...],
    resume: bool,
    dry_run: bool,
) -> int:
    """Body of `tune-app search`. Returns the exit code; raises UserInputError for bad input."""
    if resume:
        if not name:
            raise UserInputError("--resume needs --name of the experiment to resume")
        ignored = {
            "--num-samples": num_samples,
            "--max-concurrent": max_concurrent,
            "--wandb": wandb,
            "--set": sets or None,
        }
        given = [flag for flag, value in ignored.items() if value is not None]
        if given:  # Ray restores the searcher and callbacks as they were: these would be lost
            raise UserInputError(
                f"--resume continues the experiment as it was started; drop {', '.join(given)}"
            )
        if space_arg:
            raise UserInputError(
                "--resume takes the space the experiment was started with; drop --space"
            )
        saved = locate(storage_path, name).download_space()
        if not saved.exists():
            raise UserInputError(
                f"--resume: no experiment {name!r} in "
                f"{storage_path or 'experiments'} (no space.yaml there)"
            )
        space_arg, sets = str(saved), ()
    if not space_arg:
        raise UserInputError("--space is required: a bundled name (tune-app spaces) or a file")
    space = resolve_space(space_arg, sets, num_samples, max_concurrent)
    where = locate(storage_path, name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if not resume:
        note_rho_without_mix(space)
    if dry_run:
        print(to_json(dry_run_plan(space, where)))
        return 0
    if resume and not where.ray_has("tuner.pkl"):
        raise UserInputError(f"--resume: {where.ray} holds no Ray Tune experiment to resume")
    if not resume and where.exists():
        raise UserInputError(f"{where.ray} already exists; pass --resume or another --name")
    check_data(space)
    set_ray_env()  # some of Ray's settings are read once, when ray is first imported
    from tune_app.orchestrate import run_search  # imports ray: after validation
    from tune_app.wandb_log import resolve_mode

    mode = "disabled" if resume else resolve_mode(wandb)  # resume: the callbacks come back
    return run_search(space, where, address=address, resume=resume, wandb_mode=mode)


NO_MIX_NOTICE_SHARE = 0.05  # below this, the duplicated SSL+SL runs are not worth a word


def note_rho_without_mix(space: SearchSpace) -> None:
    """Say so when a share of the MixTraining trials will have no MIX epoch (= SSL+SL runs)."""
    found = space.no_mix_share()
    if found is None or found[1] < NO_MIX_NOTICE_SHARE:
        return
    limit, share = found
    config = space.trial_config({})
    say(
        f"tune-app: note: with epochs_ssl={config.epochs_ssl}, epochs_sl={config.epochs_sl}, "
        f"rho < {limit:.3g} gives no MIX epoch (e_mix = floor(rho * "
        f"{min(config.epochs_ssl, config.epochs_sl)}) = 0): about {share:.0%} of the "
        "MixTraining trials will train exactly as the ssl_sl baseline. To spend every trial "
        f"on MixTraining: --set parameters.rho.min={limit:.3g}"
    )


def write_space(space: SearchSpace, experiment: Path) -> None:
    experiment.mkdir(parents=True, exist_ok=True)
    (experiment / "space.yaml").write_text(yaml.safe_dump(space.to_dict(), sort_keys=False))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
