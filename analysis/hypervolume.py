"""Hypervolume, its reference point, and the knee of a front; all on "lower is better" costs.

Every function here takes costs already converted with `to_minimize` ([N, M], lower is better),
so one code path serves any mix of maximised and minimised objectives.
"""

from __future__ import annotations

import numpy as np

REFERENCE_MARGIN = 0.1
REFERENCE_RULE = (
    "per objective, the worst value over all complete trials (MixTraining and baselines), "
    "pushed out by 10% of that objective's range (10% of |worst| when the range is 0, "
    "or 0.1 when both are 0)"
)
KNEE_RULE = (
    "two objectives and 3+ front points: normalise the front to [0, 1] per objective and take "
    "the point farthest from the straight line joining its two extremes; otherwise (1-2 points, "
    "a straight-line front, other than 2 objectives): the point nearest the ideal point, each "
    "objective normalised by its best..worst range over all complete trials"
)


def reference_point(costs: np.ndarray, margin: float = REFERENCE_MARGIN) -> np.ndarray:
    """The hypervolume reference point: see `REFERENCE_RULE`.

    Args:
        costs: [N, M] lower-is-better values of every complete trial; N >= 1.
        margin: fraction of each objective's range to push the worst value out by.

    Returns:
        [M] reference point, strictly worse than every point in `costs`.
    """
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 2 or len(costs) == 0:
        raise ValueError("reference_point needs at least one point, shape [N, M]")
    worst, best = costs.max(axis=0), costs.min(axis=0)
    span = worst - best
    # A zero range would put every point on the reference boundary (zero volume): fall back to
    # the magnitude, then to a constant, so a one-point experiment still has a volume.
    span = np.where(span > 0, span, np.abs(worst))
    span = np.where(span > 0, span, 1.0)
    return worst + margin * span


def hypervolume(costs: np.ndarray, ref: np.ndarray) -> float:
    """Volume of the region dominated by `costs` and bounded by `ref` (lower is better).

    Points not strictly better than `ref` in every objective add no volume and are dropped.
    Uses Optuna's exact WFG implementation when available, else an exact slicing fallback.

    Args:
        costs: [N, M] lower-is-better values (N may be 0).
        ref: [M] reference point.

    Returns:
        The hypervolume (0.0 for an empty set).
    """
    costs = np.asarray(costs, dtype=float).reshape(-1, len(ref))
    ref = np.asarray(ref, dtype=float)
    inside = costs[np.all(costs < ref, axis=1)]
    if len(inside) == 0:
        return 0.0
    try:
        # Private in Optuna 4-5 (no public hypervolume API); well tested there. The fallback
        # keeps us working if Optuna moves it.
        from optuna._hypervolume import compute_hypervolume
    except ImportError:  # pragma: no cover - depends on the installed Optuna
        return hypervolume_slicing(inside, ref)
    return float(compute_hypervolume(inside, ref))


def hypervolume_2d(costs: np.ndarray, ref: np.ndarray) -> float:
    """Closed-form 2-D hypervolume: a sweep over points sorted by the first objective.

    Args:
        costs: [N, 2] lower-is-better values.
        ref: [2] reference point.

    Returns:
        The area dominated by `costs` inside the box bounded by `ref`.
    """
    costs = np.asarray(costs, dtype=float).reshape(-1, 2)
    costs = costs[np.all(costs < ref, axis=1)]
    area, ceiling = 0.0, float(ref[1])
    for x, y in costs[np.lexsort((costs[:, 1], costs[:, 0]))]:
        if y < ceiling:  # a point at or above the current ceiling is dominated: no new area
            area += (ref[0] - x) * (ceiling - y)
            ceiling = y
    return float(area)


def hypervolume_slicing(costs: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume for any M by slicing along the last objective (fine for small N).

    Args:
        costs: [N, M] lower-is-better values, all strictly better than `ref`.
        ref: [M] reference point.

    Returns:
        The hypervolume.
    """
    costs = np.asarray(costs, dtype=float).reshape(-1, len(ref))
    if len(costs) == 0:
        return 0.0
    if costs.shape[1] == 1:
        return float(ref[0] - costs[:, 0].min())
    if costs.shape[1] == 2:
        return hypervolume_2d(costs, ref)
    levels = np.unique(np.append(costs[:, -1], ref[-1]))
    total = 0.0
    for low, high in zip(levels[:-1], levels[1:], strict=True):
        # The slab [low, high) of the last objective is covered by every point at or below low.
        active = costs[costs[:, -1] <= low, :-1]
        total += (high - low) * hypervolume_slicing(active, ref[:-1])
    return total


def knee_index(costs: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None = None) -> int:
    """Index (into `costs`) of the knee of a front; see `KNEE_RULE`. Ties: the lowest index.

    Args:
        costs: [N, M] lower-is-better values of the front points; N >= 1.
        bounds: (best, worst) [M] each, used to normalise for the nearest-to-ideal fallback;
            analysis passes the range over all complete trials. Default: the front's own.

    Returns:
        The row index of the knee.
    """
    costs = np.asarray(costs, dtype=float)
    if len(costs) == 0:
        raise ValueError("knee_index needs at least one front point")
    if costs.shape[1] == 2 and len(costs) >= 3:
        distance = chord_distance(normalise(costs, costs.min(axis=0), costs.max(axis=0)))
        if distance.max() > 1e-12:  # else collinear or all equal: no knee on the chord
            return int(np.argmax(distance))
    low, high = bounds if bounds is not None else (costs.min(axis=0), costs.max(axis=0))
    return int(np.argmin(np.linalg.norm(normalise(costs, low, high), axis=1)))


def normalise(costs: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    span = np.asarray(high, dtype=float) - np.asarray(low, dtype=float)
    return (costs - low) / np.where(span > 0, span, 1.0)


def chord_distance(norm: np.ndarray) -> np.ndarray:
    """[N] distance of each 2-D point from the line through the extremes of the first column."""
    first, last = norm[np.argmin(norm[:, 0])], norm[np.argmax(norm[:, 0])]
    length = np.linalg.norm(last - first)
    if length == 0:
        return np.zeros(len(norm))
    direction, offset = (last - first) / length, norm - first
    # The 2-D cross product's magnitude is the distance from the line.
    return np.abs(offset[:, 0] * direction[1] - offset[:, 1] * direction[0])
