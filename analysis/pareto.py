"""Non-dominated sets for any number of objectives, after converting to "lower is better"."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.hypervolume import hypervolume, reference_point


def to_minimize(values: np.ndarray, goals: Sequence[str]) -> np.ndarray:
    """values: [N, M] with goal per column (maximize | minimize) -> [N, M] to minimise."""
    values = np.asarray(values, dtype=float).reshape(-1, len(goals))
    signs = np.array([-1.0 if g == "maximize" else 1.0 for g in goals])
    if any(g not in ("maximize", "minimize") for g in goals):
        raise ValueError(f"goals must be maximize or minimize, got {list(goals)}")
    return values * signs


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a dominates b (both lower-is-better): no worse everywhere, strictly better somewhere."""
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_mask(values: np.ndarray, goals: Sequence[str]) -> np.ndarray:
    """Boolean [N]: True where no other point dominates. Duplicates of a front point all stay.

    O(N^2 M) with numpy broadcasting, ample for searches of thousands of trials.
    """
    costs = to_minimize(values, goals)
    if len(costs) == 0:
        return np.zeros(0, dtype=bool)
    no_worse = np.all(costs[:, None, :] <= costs[None, :, :], axis=2)  # [i, j]: i <= j
    better = np.any(costs[:, None, :] < costs[None, :, :], axis=2)
    dominated_by = no_worse & better  # [i, j]: i dominates j
    return ~dominated_by.any(axis=0)


def hv_contributions(costs: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Each point's exclusive hypervolume: the volume lost without it. costs: [N, M] to minimise."""
    total = hypervolume(costs, ref)
    keep = np.ones(len(costs), dtype=bool)
    out = np.empty(len(costs))
    for i in range(len(costs)):
        keep[i] = False
        out[i] = total - hypervolume(costs[keep], ref)
        keep[i] = True
    return out


def rank_points(values: np.ndarray, goals: Sequence[str]) -> list[int]:
    """Indices of `values` [N, M] best first: non-dominated fronts in order, each front by
    hypervolume contribution (larger first; ties keep input order). The reference point is
    taken over all N rows.

    The one ranking of the project: confirmation picks its configurations with it, and Pareto
    halving its survivors at a rung.
    """
    values = np.asarray(values, dtype=float).reshape(-1, len(goals))
    if len(values) == 0:
        return []
    ref = reference_point(to_minimize(values, goals))
    left, order = np.arange(len(values)), []
    while len(left):
        front = left[pareto_mask(values[left], goals)]
        gain = hv_contributions(to_minimize(values[front], goals), ref)
        order += front[np.argsort(-gain, kind="stable")].tolist()
        left = np.setdiff1d(left, front)
    return order
