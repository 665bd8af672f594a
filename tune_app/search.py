"""`tune-app search` and `tune-app confirm`: the commands that run an experiment.

Everything is validated before Ray starts or anything is written: the space, the dataset, and
(once Ray is up, still before writing) whether the cluster can hold one trial's resources.
The Ray side is `tune_app.experiment`, imported only once the input is known good.
"""

from __future__ import annotations

import time
from typing import Any

from search_spaces import SearchSpace, SpaceError, load_space
from search_spaces.schema import e_mix
from tune_app.claim import claim
from tune_app.driver import set_ray_env
from tune_app.location import Location, locate
from tune_app.settings import (
    UserInputError,
    check_name,
    default_name,
    parse_set,
    say,
    to_json,
    write_text_atomic,
)


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


def experiment_plan(space: SearchSpace, where: Location) -> dict[str, Any]:
    from tune_app.searcher import baseline_configs

    return {
        "experiment": where.ray,
        "local_files": str(where.local),
        "space": space.to_dict(),
        "objectives": [{"metric": o.metric, "goal": o.goal} for o in space.objectives],
        "sampler": {"name": space.sampler, "seed": space.seed},
        "model": model_plan(space.trial_config({})),
        "resources": {"cpu": space.cpu, "gpu": space.gpu, "max_concurrent": space.max_concurrent},
        "trials": baseline_configs(space)
        + [
            {
                "pipeline": "mixtraining",
                "count": space.num_samples,
                "searched": sorted(space.parameters),
                "steps": steps_plan(space),
            }
        ]
        + confirm_plan(space),
    }


def model_plan(config: Any) -> dict[str, Any]:
    """The model at the data's size (the dry-run's `model`): SSL path, grid or stride, sizes.

    Sized from `image_size` and the built-in dataset's shape; a folder without `image_size`
    is sized when prepared (`tune-app data PATH --model NAME` shows it then).
    """
    from trainers.models import NATIVE_SHAPES, model_for, model_summary

    chans, side, classes = NATIVE_SHAPES.get(config.dataset, (3, None, 10))
    size = config.image_size or side
    if size is None:
        return {"name": config.model, "sized": "at the folder's common size, once prepared"}
    try:
        model = model_for(config, classes, size, chans)
    except ValueError as e:
        raise UserInputError(f"trainer.model {config.model} at image_size {size}: {e}") from e
    note = "" if config.dataset in NATIVE_SHAPES else " (3 channels, 10 classes assumed)"
    return {"name": config.model, **model_summary(model, size), "sized_for": config.dataset + note}


def steps_plan(space: SearchSpace) -> dict[str, Any]:
    """Knobs searched as steps (the dry-run shows which values the searcher draws from)."""
    steps, m = space.rho_steps(), space.mix_epochs_base()
    if steps is None or m is None:
        return {}
    return {
        "rho": {
            "values": steps,
            "e_mix": [e_mix(m, v) for v in steps],
            "why": f"rho acts only through e_mix = floor(rho * {m}) at these fixed epochs: one "
            "value per distinct e_mix, both ends of the range included",
        }
    }


def confirm_plan(space: SearchSpace) -> list[dict[str, Any]]:
    """The confirmation phase of `search.confirm`, as the dry-run lists it (none without it)."""
    if not space.confirm_top_k or not space.confirm_seeds:
        return []
    return [
        {
            "pipeline": "mixtraining",
            "role": "confirm",
            "top_k": space.confirm_top_k,
            "seeds": list(space.confirm_seeds),
            # at most: fewer when fewer configurations complete than top_k
            "count": space.confirm_top_k * len(space.confirm_seeds),
            "when": "after the sampled trials end, as a second Ray phase of this command",
            "told_to_optuna": False,
            "chosen": "the top_k best single-seed MixTraining configurations (front first, "
            "by hypervolume contribution), each re-run with every seed",
        }
    ]


def check_data(space: SearchSpace) -> dict[str, Any] | None:
    """Load the data once now so a missing dataset is bad input, not N failed trials.

    Returns the prepared data's record (`tune_app.data.data_record`), None for other data."""
    import torch

    from trainers.accel import check_accel
    from trainers.models import NATIVE_SHAPES
    from trainers.pipeline import load_splits
    from tune_app.data import prepare_for

    config = space.trial_config({}, "mixtraining", None)
    chans, side, classes = NATIVE_SHAPES.get(config.dataset, (3, None, 10))
    if config.image_size or side:  # the size is known: refuse a model that cannot take it
        check_model(space, config, config.image_size or side, chans, classes)  # before preparing
    record = prepare_for(config, f"{space.source}: trainer")  # a folder: decoded once, here
    try:
        splits = load_splits(config, torch.device("cpu"))
    except ValueError as e:
        raise UserInputError(f"{space.source}: trainer.dataset: {e}") from e
    check_model(space, config, splits.image_size, splits.in_chans, splits.num_classes)
    try:
        check_accel(config.sl_accel, len(splits.train_x), config.sl_skip_fraction)
    except ValueError as e:
        raise UserInputError(f"{space.source}: trainer.{e}") from e
    return record


def check_model(space: SearchSpace, config: Any, size: int, chans: int, classes: int) -> None:
    """An image size the model cannot take (a ViT's patch grid, a CNN's stride) is bad input."""
    from trainers.models import model_for

    try:
        model_for(config, classes, size, chans)
    except ValueError as e:
        raise UserInputError(
            f"{space.source}: trainer.image_size = {size} (the data's): model {config.model}: {e}"
        ) from e


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
    verbose: bool = False,
    data_cache: str | None = None,
) -> int:
    """Body of `tune-app search`. Returns the exit code; raises UserInputError for bad input."""
    if name is not None:
        check_name(name)
    if resume:
        if not name:
            raise UserInputError("--resume needs --name of the experiment to resume")
        ignored = {
            "--num-samples": num_samples,
            "--max-concurrent": max_concurrent,
            "--wandb": wandb,
            "--set": sets or None,
            "--verbose": verbose or None,  # the display comes back from tuner.pkl
            "--data-cache": data_cache,  # space.yaml holds the one the search started with
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
    where = locate(storage_path, name or default_name(space.name, time.strftime("%Y%m%d-%H%M%S")))
    cache = None if resume else data_cache_setting(space, where, data_cache)
    if cache is not None:  # trials read the prepared data from where the driver wrote it
        space = resolve_space(space_arg, (*sets, cache), num_samples, max_concurrent)
    if not resume:
        note_rho_without_mix(space)
    if dry_run:
        print(to_json(experiment_plan(space, where)))
        return 0
    # One driver per experiment: the checks below and everything after run under the claim, so
    # two drivers can never both find the name free (or both resume it).
    with claim(where.local, "experiment"):
        if resume and not where.ray_has("tuner.pkl"):
            raise UserInputError(f"--resume: {where.ray} holds no Ray Tune experiment to resume")
        if not resume and where.exists():
            raise UserInputError(f"{where.ray} already exists; pass --resume or another --name")
        record = check_data(space)  # decodes the dataset: only once the name is ours
        if record is not None:  # the class names and prepared data, for exports and users
            from analysis.choose import DATA_RECORD

            write_text_atomic(where.local / DATA_RECORD, to_json(record) + "\n")
        set_ray_env()  # some of Ray's settings are read once, when ray is first imported
        from tune_app.experiment import run_search  # imports ray: after validation
        from tune_app.wandb_log import resolve_mode

        mode = "disabled" if resume else resolve_mode(wandb)  # resume: the callbacks come back
        return run_search(
            space, where, address=address, resume=resume, wandb_mode=mode, verbose=verbose
        )


def data_cache_setting(space: SearchSpace, where: Location, given: str | None) -> str | None:
    """The `--set` that tells trials where the prepared data lives, or None (nothing to set).

    `--data-cache DIR` wins; a prepared dataset (folder, tinyimagenet) whose space names no
    `trainer.data_cache` gets `<storage path>/data-cache`, shared by the storage's experiments
    and, where the storage path is shared (as Ray needs on a cluster), by every node.
    """
    from trainers.data.loaders import PREPARED_DATASETS
    from tune_app.data import cache_path_arg

    if given is not None:
        return f"trainer.data_cache={cache_path_arg(given)}"
    config = space.trial_config({})
    if config.dataset not in PREPARED_DATASETS or config.data_cache is not None:
        return None
    return f"trainer.data_cache={where.local.resolve().parent / 'data-cache'}"


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


def confirm_command(
    experiment: str,
    top_k: int | None,
    seeds: tuple[int, ...],
    wandb: str | None = None,
    verbose: bool = False,
) -> int:
    """Body of `tune-app confirm`: confirmation trials for a finished experiment (resumable).

    Defaults come from the space's `search.confirm`; a (configuration, seed) pair already run
    is not run again, and an interrupted confirmation phase is resumed first.
    """
    from pathlib import Path

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
        set_ray_env()  # before ray is first imported
        from tune_app.experiment import run_confirm, unfinished
        from tune_app.wandb_log import resolve_mode

        if unfinished(where.ray):
            raise UserInputError(
                f"{experiment}: the search has unfinished trials; finish it first with "
                f"tune-app search --name {where.name} --storage-path {where.ray_parent} --resume"
            )
        return run_confirm(space, where, top_k, seeds, resolve_mode(wandb), verbose)
