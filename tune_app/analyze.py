"""`tune-app analyze` and `tune-app export`: thin bodies over the `analysis` package.

analyze exits 0 when the experiment has a MixTraining front and 1 when no MixTraining trial
completed (the files are still written and say what was left out and why), like `search`,
which exits 1 when nothing completed. Bad input (no such folder, not an experiment, a
selection that matches nothing) raises UserInputError: exit 2, nothing written.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import (
    Analysis,
    ExperimentError,
    NoMatch,
    analyze_experiment,
    load_experiment,
    provenance,
    seed_trial,
    select_configs,
    write_analysis,
)
from analysis.choose import SINGLE_RUN_WARNING, config_scores
from analysis.configs import BY_RUN
from analysis.records import plain
from analysis.report import headline
from analysis.write import written_lines
from tune_app.settings import UserInputError, check_out_path, dump_yaml, write_text_atomic

# An execution detail of the search slot (threads per Ray CPU), not of the trial's recipe:
# a standalone run should use every CPU it has (0).
NOT_EXPORTED = ("num_threads",)


def analyze_command(experiment: str, out: str | None, wandb_workspace: bool = False) -> int:
    """Body of `tune-app analyze`: write the analysis files, print the headline and where
    each file is; with `wandb_workspace`, also save the W&B view (never fails the command)."""
    if out is not None:
        check_out_path(out, "--out", folder=True)
    try:
        analysis, folder = write_analysis(experiment, out)
    except ExperimentError as e:
        raise UserInputError(str(e)) from e
    print("\n".join(headline(analysis)))
    print("\n".join(written_lines(folder)))
    log_to_wandb(analysis, folder / "pareto.png")
    if wandb_workspace:
        save_view(analysis)
    if analysis.mix.empty:
        print("tune-app analyze: no MixTraining trial completed (see report.md)", file=sys.stderr)
        return 1
    return 0


def save_view(analysis: Analysis) -> None:
    """`--wandb-workspace`: the W&B saved view, or one line saying why there is none."""
    from tune_app.wandb_workspace import WorkspaceUnavailable, save_workspace

    try:
        print(f"W&B workspace view: {save_workspace(analysis)}")
    except WorkspaceUnavailable as e:
        print(f"tune-app analyze: no W&B workspace view: {e}", file=sys.stderr)


def wandb_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """Every trial: pipeline, knobs, objectives, whether it is on the MixTraining front."""
    exp = analysis.experiment
    on_front = set(analysis.front["trial_id"])
    columns = ["trial_id", "pipeline", "seed", "status", *exp.knobs, *exp.metrics]
    table = exp.table[[c for c in columns if c in exp.table]]
    return [
        {**{k: plain(v) for k, v in row.items()}, "on_front": row["trial_id"] in on_front}
        for row in table.to_dict("records")
    ]


def log_to_wandb(analysis: Analysis, png: Path) -> None:
    """The "pareto" run beside the trials' runs, when the search logged to W&B."""
    experiment = analysis.experiment.path
    if not (experiment / "wandb").is_dir():
        return
    from tune_app.wandb_log import log_pareto_run

    try:
        folder = log_pareto_run(experiment, wandb_rows(analysis), png)
    except Exception as e:  # W&B must never fail an analysis; say what happened instead
        print(
            f"tune-app analyze: W&B pareto run not logged: {type(e).__name__}: {e}", file=sys.stderr
        )
        return
    if folder is not None:
        print(f"Logged the W&B pareto run ({folder})")


def trial_settings(row: pd.Series) -> dict[str, Any]:
    """The TrialConfig fields a trials row holds (minus NOT_EXPORTED), as plain values."""
    from trainers import TrialConfig  # imports torch: only export needs it

    values = {}
    for f in dataclasses.fields(TrialConfig):
        if f.name in NOT_EXPORTED or f.name not in row.index:
            continue
        value = plain(row[f.name])
        if value is None and "None" not in str(f.type):
            continue  # a column the fallback table could not fill: the field's default applies
        values[f.name] = value
    return values


@dataclass(frozen=True)
class ExportRequest:
    """What `tune-app export` was asked for (its options, less the experiment and --out)."""

    select: str
    max_latency: float | None = None
    min_accuracy: float | None = None
    seed: int | None = None  # which seed's run to write; None: the configuration's lowest
    include_unconfirmed: bool = False


def config_text(analysis: Analysis, config: pd.Series, trial: pd.Series, how: str) -> str:
    """A standalone `tune-app train --config` file: provenance comment, then every setting."""
    from trainers import ConfigError, TrialConfig

    try:
        loaded = TrialConfig.from_dict(trial_settings(trial))
    except ConfigError as e:
        raise UserInputError(f"trial {trial['trial_id']}: its settings do not load: {e}") from e
    settings = {k: v for k, v in loaded.to_dict().items() if k not in NOT_EXPORTED}
    comment = "".join(f"# {line}\n" for line in provenance(analysis, config, trial, how))
    return comment + dump_yaml(settings)


def export_targets(out: Path, ids: list[str], all_pareto: bool) -> list[Path]:
    if not all_pareto:
        return [out]
    return [out.with_name(f"{out.stem}-{cid}{out.suffix or '.yaml'}") for cid in ids]


def chosen(experiment: str, request: ExportRequest) -> tuple[Analysis, list[tuple]]:
    """The analysis and each chosen (configuration, trial of the requested seed).

    Raises:
        UserInputError: not an experiment, nothing matches, or a seed a configuration lacks.
    """
    try:
        exp = load_experiment(experiment)
        analysis = analyze_experiment(exp, include_unconfirmed=request.include_unconfirmed)
        configs = select_configs(
            analysis, request.select, request.max_latency, request.min_accuracy
        )
        return analysis, [(c, seed_trial(analysis, c, request.seed)) for _, c in configs.iterrows()]
    except ExperimentError as e:
        raise UserInputError(str(e)) from e
    except NoMatch as e:
        raise UserInputError(f"{experiment}: {e}") from e


def export_command(experiment: str, request: ExportRequest, out: str) -> int:
    """Body of `tune-app export`: write the selected configuration(s); list what was written."""
    check_out_path(out, "--out", folder=False)
    analysis, picks = chosen(experiment, request)
    # Every text is built (and its settings validated) before the first file is written.
    texts = [config_text(analysis, c, t, request.select) for c, t in picks]
    ids = [str(c["config_id"]) for c, _ in picks]
    targets = export_targets(Path(out), ids, request.select == "all-pareto")
    for path, text in zip(targets, texts, strict=True):
        write_text_atomic(path, text)
    metrics = analysis.experiment.metrics
    for path, (config, trial) in zip(targets, picks, strict=True):
        print(
            f"{path}  (configuration {config['config_id']}, {int(config['n'])} seed(s): "
            f"{config_scores(config, metrics)}; settings of seed {trial['seed']}, "
            f"trial {trial['trial_id']})"
        )
    if analysis.basis == BY_RUN:
        print(f"tune-app export: note: {SINGLE_RUN_WARNING}", file=sys.stderr)
    return 0
