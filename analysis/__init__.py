"""Pure functions over result tables: Pareto fronts, dominance, hypervolume, plots, reports.

Importing it starts nothing (no Ray, W&B or torch); matplotlib and plotly load only to render.
"""

from analysis.choose import SELECTIONS, NoMatch, provenance, seed_trial, select_configs
from analysis.hypervolume import (
    KNEE_RULE,
    REFERENCE_RULE,
    hypervolume,
    hypervolume_2d,
    knee_index,
    reference_point,
)
from analysis.load import Experiment, ExperimentError, load_experiment
from analysis.pareto import dominates, pareto_mask, to_minimize
from analysis.records import summary_json
from analysis.summary import Analysis, analyze_experiment
from analysis.write import write_analysis

__all__ = [
    "KNEE_RULE",
    "REFERENCE_RULE",
    "SELECTIONS",
    "Analysis",
    "Experiment",
    "ExperimentError",
    "NoMatch",
    "analyze_experiment",
    "dominates",
    "hypervolume",
    "hypervolume_2d",
    "knee_index",
    "load_experiment",
    "pareto_mask",
    "provenance",
    "reference_point",
    "seed_trial",
    "select_configs",
    "summary_json",
    "to_minimize",
    "write_analysis",
]
