"""`tune-app analyze --wandb-workspace`: a W&B saved view of one experiment's group.

The view filters the project's runs to the experiment's group and shows the panels a tuner
adds by hand otherwise: parallel coordinates over the searched knobs ending in both
objectives, the latency-vs-accuracy scatter with each run coloured by its pipeline, and the
per-epoch curves grouped by pipeline. It is built with `wandb-workspaces` (the optional extra
`tune-app[workspace]`); building it needs no network, saving it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis import Analysis

EXTRA = "pip install 'tune-app[workspace]'"
# The pipelines' colours in pareto.png / pareto.html, so the W&B scatter reads the same way.
PIPELINE_COLOURS = {"mixtraining": "#08519c", "ssl_sl": "#d95f02", "sl": "#1b9e77"}
OTHER_COLOUR = "#7570b3"
CURVES = (["val_accuracy"], ["loss_ssl", "loss_sl"])


class WorkspaceUnavailable(RuntimeError):
    """The view cannot be saved here (no package, no credentials, no network); says why."""


@dataclass(frozen=True)
class Target:
    """Where the experiment's runs live: the same defaults the search logged with."""

    entity: str | None
    project: str
    group: str


def target_of(analysis: Analysis) -> Target:
    """The space's `wandb:` block, with the search's defaults (project tune-app, group = name)."""
    exp = analysis.experiment
    w = exp.space.get("wandb") or {}
    return Target(w.get("entity"), w.get("project") or "tune-app", w.get("group") or exp.path.name)


def _modules() -> tuple[Any, Any]:
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError as e:
        raise WorkspaceUnavailable(f"wandb-workspaces is not installed ({EXTRA})") from e
    return wr, ws


def panels(analysis: Analysis) -> tuple[list[Any], list[Any]]:
    """(trade-off panels, per-epoch panels) of the view."""
    wr, _ = _modules()
    exp = analysis.experiment
    x, y = exp.metrics[-1], exp.metrics[0]  # pinned order: accuracy first, latency second
    columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(k)) for k in exp.knobs]
    columns += [wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(m)) for m in exp.metrics]
    trade_off = [
        wr.ParallelCoordinatesPlot(title="knobs -> objectives", columns=columns),
        wr.ScatterPlot(
            title=f"{y} vs {x} (colour: pipeline)",
            x=wr.SummaryMetric(x),
            y=wr.SummaryMetric(y),
        ),
    ]
    curves = [
        wr.LinePlot(title=f"{', '.join(ys)} per epoch", x="epoch", y=list(ys), groupby="pipeline")
        for ys in CURVES
    ]
    return trade_off, curves


def run_colours(analysis: Analysis) -> dict[str, str]:
    """Run id (= Ray trial id) -> its pipeline's colour: the scatter's colouring."""
    table = analysis.experiment.table
    return {
        str(t): PIPELINE_COLOURS.get(str(p), OTHER_COLOUR)
        for t, p in zip(table["trial_id"], table["pipeline"], strict=True)
    }


def build_workspace(analysis: Analysis, entity: str) -> Any:
    """The saved view (a `wandb_workspaces.workspaces.Workspace`), built without any network."""
    wr, ws = _modules()
    target = target_of(analysis)
    trade_off, curves = panels(analysis)
    runset = ws.RunsetSettings(
        filters=[ws.Metric("Group") == target.group],
        run_settings={tid: ws.RunSettings(color=c) for tid, c in run_colours(analysis).items()},
    )
    return ws.Workspace(
        entity=entity,
        project=target.project,
        name=f"tune-app: {target.group}",
        sections=[
            ws.Section(name="Trade-off", panels=trade_off, is_open=True),
            ws.Section(name="Per-epoch curves by pipeline", panels=curves, is_open=True),
        ],
        runset_settings=runset,
    )


def save_workspace(analysis: Analysis) -> str:
    """Build and save the view; returns its URL.

    Raises:
        WorkspaceUnavailable: the package, the credentials or the W&B server is missing.
    """
    _modules()
    import wandb

    target = target_of(analysis)
    try:
        entity = target.entity or wandb.Api(timeout=20).default_entity
    except Exception as e:  # no API key, or the server cannot be reached
        raise WorkspaceUnavailable(f"W&B is not reachable: {type(e).__name__}: {e}") from e
    if not entity:
        raise WorkspaceUnavailable("no W&B entity: set `wandb: {entity: ...}` in the space")
    view = build_workspace(analysis, entity)
    try:
        view.save()
    except Exception as e:  # network or permission errors: the analysis itself is done
        raise WorkspaceUnavailable(f"saving the view failed: {type(e).__name__}: {e}") from e
    return str(view.url)
