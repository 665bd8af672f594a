"""Pure functions over result tables: Pareto fronts, dominance. Importing it starts nothing."""

from analysis.pareto import dominates, pareto_mask, to_minimize

__all__ = ["dominates", "pareto_mask", "to_minimize"]
