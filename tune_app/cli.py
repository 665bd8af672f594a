"""The `tune-app` command line: a thin layer over importable functions.

Exit codes: 0 success; 2 bad input (one clear message on stderr, nothing started or written);
1 a failure while running.
"""

from __future__ import annotations

import errno
import sys

import click

from tune_app.settings import UserInputError

DATA_CACHE_HELP = (
    "Where prepared image folders live (default: ~/.cache/tune-app/data for train and data, "
    "<storage path>/data-cache for search)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tune-app")
def cli() -> None:
    """Search MixTraining hyperparameters under two objectives: accuracy and training latency."""


@cli.command()
@click.option("--config", "config_path", required=True, help="YAML/JSON file of trial settings.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one setting, e.g. --set rho=0.5 (repeatable).",
)
@click.option("--out", default=None, help="Run folder (default: runs/<config name>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and phases as JSON.")
@click.option("--data-cache", default=None, help=DATA_CACHE_HELP)
def train(
    config_path: str,
    overrides: tuple[str, ...],
    out: str | None,
    resume: bool,
    dry_run: bool,
    data_cache: str | None,
) -> int:
    """Run the pipeline once (SSL, MIX, SL phases) and write metrics and checkpoints."""
    from tune_app.data import cache_path_arg
    from tune_app.train import train_command  # imports torch: keep `--help` fast

    if data_cache is not None:
        overrides = (*overrides, f"data_cache={cache_path_arg(data_cache)}")
    return train_command(config_path, overrides, out, resume, dry_run)


@cli.command()
@click.option(
    "--space",
    "space_arg",
    default=None,
    help="Bundled space name or YAML path (not with --resume).",
)
@click.option("--name", default=None, help="Experiment name (default: <space>-<time>).")
@click.option(
    "--storage-path", default=None, help="Where experiments live (default ./experiments)."
)
@click.option("--num-samples", type=int, default=None, help="MixTraining trials to sample.")
@click.option("--max-concurrent", type=int, default=None, help="Trials running at once.")
@click.option("--address", default=None, help="Join a Ray cluster (auto, ray://host:10001).")
@click.option(
    "--wandb",
    type=click.Choice(["online", "offline", "disabled"]),
    default=None,
    help="Weights & Biases logging (default: online when logged in, else offline).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a dotted path of the space, e.g. --set trainer.epochs_sl=3.",
)
@click.option("--resume", is_flag=True, help="Continue the experiment --name after an interrupt.")
@click.option("--dry-run", is_flag=True, help="Print the resolved plan as JSON; run nothing.")
@click.option(
    "--verbose",
    is_flag=True,
    help="Show Ray Tune's status table instead of tune-app's progress display.",
)
@click.option("--data-cache", default=None, help=DATA_CACHE_HELP)
def search(space_arg: str | None, **options: object) -> int:
    """Search MixTraining's knobs with Ray Tune + Optuna, baselines included."""
    from tune_app.search import search_command

    return search_command(space_arg, **options)


@cli.command()
@click.argument("experiment", metavar="EXP_DIR")
@click.option("--out", default=None, help="Where to write (default: EXP_DIR/analysis).")
@click.option(
    "--wandb-workspace",
    is_flag=True,
    help="Also save a W&B view of the experiment's group (online; needs tune-app[workspace]).",
)
def analyze(experiment: str, out: str | None, wandb_workspace: bool) -> int:
    """Pareto front of an experiment against the baselines: plots, report, summary."""
    from tune_app.analyze import analyze_command  # pandas, pyarrow: keep --help fast

    return analyze_command(experiment, out, wandb_workspace)


@cli.command()
@click.argument("experiment", metavar="EXP_DIR")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Port to serve on (on 127.0.0.1 only).",
)
def dashboard(experiment: str, port: int) -> int:
    """Open the experiment's Optuna study in optuna-dashboard (needs tune-app[dashboard])."""
    from tune_app.dashboard import dashboard_command

    return dashboard_command(experiment, port)


@cli.command()
@click.argument("experiment", metavar="EXP_DIR")
@click.option(
    "--select",
    required=True,
    type=click.Choice(["knee", "max-accuracy", "min-latency", "all-pareto"]),
    help="Which front configuration(s) to export (chosen by their means over seeds).",
)
@click.option(
    "--max-latency",
    type=float,
    metavar="S",
    help="Keep configurations whose mean latency objective (calibrated_latency_s when the "
    "space optimises it, else train_latency_s) is <= S seconds.",
)
@click.option(
    "--min-accuracy",
    type=float,
    metavar="A",
    help="Keep configurations with mean val_accuracy >= A.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    metavar="S",
    help="Write the settings of the chosen configuration's run with this seed (default: its "
    "lowest); seeds differ in nothing else.",
)
@click.option(
    "--include-unconfirmed",
    is_flag=True,
    help="Let single-seed configurations onto the front even when confirmed ones exist.",
)
@click.option(
    "--out",
    required=True,
    help="YAML file for `tune-app train --config`; all-pareto writes <stem>-<config_id>.yaml.",
)
def export(
    experiment: str,
    select: str,
    max_latency: float | None,
    min_accuracy: float | None,
    seed: int | None,
    include_unconfirmed: bool,
    out: str,
) -> int:
    """Export front configuration(s) of an experiment as standalone run configs."""
    from tune_app.analyze import ExportRequest, export_command

    request = ExportRequest(select, max_latency, min_accuracy, seed, include_unconfirmed)
    return export_command(experiment, request, out)


@cli.command()
@click.argument("experiment", metavar="EXP_DIR")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Configurations to re-run.")
@click.option("--seeds", type=int, multiple=True, metavar="S", help="Extra seed (repeatable).")
@click.option(
    "--wandb",
    type=click.Choice(["online", "offline", "disabled"]),
    default=None,
    help="Weights & Biases logging (default: online when logged in, else offline).",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Show Ray Tune's status table instead of tune-app's progress display.",
)
def confirm(
    experiment: str, top_k: int | None, seeds: tuple[int, ...], wandb: str | None, verbose: bool
) -> int:
    """Re-run the K best single-seed configurations of an experiment with extra seeds."""
    from tune_app.search import confirm_command

    return confirm_command(experiment, top_k, seeds, wandb, verbose)


@cli.command()
@click.argument("path", metavar="PATH")
@click.option(
    "--image-size",
    type=int,
    default=None,
    help="Side in pixels: shorter side resized, centre cropped (default: the common size).",
)
@click.option("--unlabeled", default=None, help="A folder of unlabelled images (any layout).")
@click.option("--prepare", is_flag=True, help="Decode into the cache now, ahead of a search.")
@click.option("--data-cache", default=None, help=DATA_CACHE_HELP)
@click.option(
    "--model", default=None, help="Show what this model (a preset or timm/<name>) becomes here."
)
def data(
    path: str,
    image_size: int | None,
    unlabeled: str | None,
    prepare: bool,
    data_cache: str | None,
    model: str | None,
) -> int:
    """Check a folder of images (classes, counts, sizes, unreadable files); --prepare it."""
    from tune_app.data import cache_path_arg, data_command

    return data_command(path, image_size, unlabeled, prepare, cache_path_arg(data_cache), model)


@cli.command()
def spaces() -> int:
    """List the bundled search spaces."""
    from search_spaces import list_spaces

    for name, description in list_spaces():
        click.echo(f"{name:<28} {description}")
    return 0


# Errors the user's input causes, by (module, class). Looked up in sys.modules: a module that
# was never imported cannot have raised them, and importing them here would load torch.
USER_ERRORS = (
    ("trainers.config", "ConfigError"),  # a run setting is unknown or out of range
    ("search_spaces.schema", "SpaceError"),  # a search space file is unusable
    ("analysis.load", "ExperimentError"),  # a folder is not a readable experiment
)
# OS errors about a path the user gave (not about the machine, such as a full disk; not a
# missing file, which inside a run is more often our bug than the user's).
PATH_ERRNOS = {
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
}


def user_error_message(error: BaseException) -> str | None:
    """The one line to print when `error` is the user's doing (exit 2), else None."""
    if isinstance(error, UserInputError):
        return str(error)
    for module, name in USER_ERRORS:
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None and isinstance(error, kind):
            return str(error)
    if isinstance(error, OSError) and error.errno in PATH_ERRNOS and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code so tests can call it directly.

    The one place that turns an error the user caused (a file, a path, a value) into exit
    code 2 and one line on stderr; anything else is a failure and keeps its traceback.
    """
    try:
        code = cli.main(args=argv, prog_name="tune-app", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:  # usage errors: unknown option, missing --config, ...
        e.show()
        return 2
    except click.exceptions.Abort:
        click.echo("tune-app: interrupted", err=True)
        return 130
    except Exception as e:
        message = user_error_message(e)
        if message is None:
            raise
        click.echo(f"tune-app: error: {message}", err=True)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
