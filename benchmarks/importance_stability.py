"""How many trials knob importance needs: rank agreement of random subsets of a real search.

    python -m benchmarks.importance_stability experiments/<name> [--repeats R] [--seed S]
        [--sizes K ...] [--inert KNOB]

For each subset size k, draws R random subsets of the complete MixTraining trials, computes
the importance exactly as `tune-app analyze` does (analysis.importance), and compares each
subset's ranking of the knobs with the whole search's, per evaluator and objective: mean
Spearman rank correlation (scipy) and how often the top knob is the same. Printed as a
Markdown table. A size where the rankings still disagree is too few to read the numbers as a
finding (`analysis.importance.MIN_TRIALS`). With `--inert KNOB` (a knob known to do nothing in
the space, such as `lam` under `ssl_source: same`), each cell also gives that knob's mean share:
a size where it is still large is a size where noise passes for importance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from analysis import analyze_experiment, load_experiment
from analysis.importance import EVALUATORS, param_importance


def ranks(shares: dict[str, float], knobs: list[str]) -> list[float]:
    return [shares[k] for k in knobs]


def agreement(full: dict, part: dict, knobs: list[str]) -> tuple[float, bool]:
    """(Spearman correlation of the shares, same top knob) for one evaluator and objective."""
    from scipy.stats import spearmanr

    rho = spearmanr(ranks(full, knobs), ranks(part, knobs)).statistic
    same_top = max(full, key=full.get) == max(part, key=part.get)
    return (0.0 if np.isnan(rho) else float(rho)), same_top


def stability(
    experiment: Path,
    repeats: int,
    seed: int,
    sizes: list[int] | None = None,
    inert: str | None = None,
) -> list[list[str]]:
    a = analyze_experiment(load_experiment(experiment))
    exp, mix = a.experiment, a.mix.reset_index(drop=True)
    parameters = exp.space.get("parameters") or {}
    full = param_importance(mix, parameters, exp.metrics, exp.goals)
    rng = np.random.default_rng(seed)
    rows = []
    for k in sizes or range(4, len(mix)):
        stats: dict[tuple[str, str], list[tuple[float, bool]]] = {}
        inert_share: dict[tuple[str, str], list[float]] = {}
        for _ in range(repeats):
            part = mix.iloc[rng.choice(len(mix), size=k, replace=False)]
            imp = param_importance(part, parameters, exp.metrics, exp.goals)
            for e in EVALUATORS:
                for m in exp.metrics:
                    stats.setdefault((e, m), []).append(
                        agreement(full.values[e][m], imp.values[e][m], full.params)
                    )
                    if inert:
                        inert_share.setdefault((e, m), []).append(imp.values[e][m][inert])
        cells = [
            f"{np.mean([s[0] for s in v]):.2f} / {np.mean([s[1] for s in v]):.0%}"
            + (f" / {np.mean(inert_share[key]):.2f}" if inert else "")
            for key, v in stats.items()
        ]
        rows.append([str(k), *cells])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="+", help="subset sizes (default: 4..n-1)")
    parser.add_argument("--inert", help="a knob known to do nothing: report its mean share")
    args = parser.parse_args()
    a = analyze_experiment(load_experiment(args.experiment))
    metrics = a.experiment.metrics
    headers = ["trials", *(f"{e} {m}" for e in EVALUATORS for m in metrics)]
    inert = f" / mean share of {args.inert}" if args.inert else ""
    print(f"{len(a.mix)} complete MixTraining trials; cells: mean Spearman / same top knob{inert}")
    print("| " + " | ".join(headers) + " |")
    print("|" + " --- |" * len(headers))
    for row in stability(args.experiment, args.repeats, args.seed, args.sizes, args.inert):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
