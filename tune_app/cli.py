"""The `tune-app` command line: a thin layer over importable functions.

Exit codes: 0 success; 2 bad input (one clear message on stderr, nothing started or written);
1 a failure while running.
"""

from __future__ import annotations

import sys

import click

from tune_app.settings import UserInputError

NOT_YET = {
    "analyze": "issue #6 (analysis and export)",
    "export": "issue #6 (analysis and export)",
}


def _not_landed(verb: str) -> int:
    click.echo(
        f"tune-app {verb}: not available yet in this version; it lands with {NOT_YET[verb]}. "
        "`tune-app train --config FILE` runs one training run today.",
        err=True,
    )
    return 1


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
def train(
    config_path: str, overrides: tuple[str, ...], out: str | None, resume: bool, dry_run: bool
) -> int:
    """Run the pipeline once (SSL, MIX, SL phases) and write metrics and checkpoints."""
    from tune_app.train import train_command  # imports torch: keep `--help` fast

    return train_command(config_path, overrides, out, resume, dry_run)


@cli.command()
@click.option("--space", "space_arg", required=True, help="Bundled space name or YAML path.")
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
def search(space_arg: str, **options: object) -> int:
    """Search MixTraining's knobs with Ray Tune + Optuna, baselines included."""
    from tune_app.search import search_command

    return search_command(space_arg, **options)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def analyze() -> int:
    """Pareto front of an experiment against the baselines (not landed yet)."""
    return _not_landed("analyze")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def export() -> int:
    """Export the best configurations of an experiment (not landed yet)."""
    return _not_landed("export")


@cli.command()
def spaces() -> int:
    """List the bundled search spaces."""
    from search_spaces import list_spaces

    for name, description in list_spaces():
        click.echo(f"{name:<28} {description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code so tests can call it directly."""
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
    except UserInputError as e:
        click.echo(f"tune-app: error: {e}", err=True)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
