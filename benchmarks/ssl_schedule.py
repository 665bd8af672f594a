"""`ssl_schedule: budget` against `phase`: final accuracy over seeds at two `rho` values.

    python -m benchmarks.ssl_schedule --seeds 0 1 2 --rhos 0.5 0.75

Every run is MixTraining with the fixed trainer settings of a bundled space (default:
`vit_mix_same`, the earlier CPU default its recorded table used) and the knobs below, on one
torch thread (what each trial of that space's search gets). `budget` runs the SSL
learning-rate cosine of all `epochs_ssl` epochs and cuts it at the MIX boundary; `phase` runs
a cosine over the run's own SSL phase. Accuracy does not
depend on timing, so machine load changes nothing but the run time. Prints the table; writes
nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from scipy import stats

from benchmarks.report import markdown_table
from search_spaces import SearchSpace, load_space
from trainers import TrialConfig, run
from tune_app.settings import parse_set

# The knobs held fixed, at the paper's / pipelines benchmark's defaults (lam is inert in a
# space whose SSL images are the SL images; it is set so the config is complete).
FIXED = {"alpha": 0.5, "lam": 0.5, "anneal": "none"}
METRICS = ("val_accuracy", "test_accuracy")


def cell_config(
    space: SearchSpace, schedule: str, rho: float, seed: int, threads: int
) -> TrialConfig:
    """One run: the space's trainer settings, `FIXED`, `rho`, the schedule, seed and threads."""
    config = space.trial_config({**FIXED, "rho": rho}, "mixtraining", seed)
    return config.replace(ssl_schedule=schedule, num_threads=threads)


def final_metrics(config: TrialConfig) -> dict[str, float]:
    """Final validation and test accuracy of one run."""
    final = run(config, lambda metrics, state: None)
    return {m: final[m] for m in METRICS}


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):.4f} ± {sd:.4f}"


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided Welch t-test p-value (nan with fewer than two values a side or no spread)."""
    if min(len(a), len(b)) < 2:
        return float("nan")
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def summary_rows(results: dict[tuple[float, str, int], dict[str, float]]) -> list[list[Any]]:
    """One row per (rho, schedule): n seeds, mean ± sd and per-seed values of each metric, and
    (on `budget` rows) the Welch p-value against `phase` at the same rho."""
    rows = []
    for rho, schedule in sorted({(r, s) for r, s, _ in results}, key=lambda k: (k[0], k[1])):
        seeds = sorted(seed for r, s, seed in results if (r, s) == (rho, schedule))
        row: list[Any] = [rho, schedule, " ".join(map(str, seeds))]
        for m in METRICS:
            vals = [results[rho, schedule, seed][m] for seed in seeds]
            row += [mean_sd(vals), " ".join(f"{v:.4f}" for v in vals)]
            other = [results[k][m] for k in results if k[0] == rho and k[1] == "phase"]
            p = welch_p(vals, other) if schedule != "phase" and other else float("nan")
            row.append("-" if p != p else f"{p:.3f}")
        rows.append(row)
    return rows


HEADER = [
    "rho",
    "ssl_schedule",
    "seeds",
    "val acc (mean ± sd)",
    "val per seed",
    "Welch p val (vs phase)",
    "test acc (mean ± sd)",
    "test per seed",
    "Welch p test (vs phase)",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="vit_mix_same")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--rhos", nargs="+", type=float, default=[0.5, 0.75])
    p.add_argument("--schedules", nargs="+", default=["phase", "budget"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="dotted override of the space, e.g. trainer.epochs_sl=2")  # fmt: skip
    args = p.parse_args(argv)
    space = load_space(args.space, parse_set(args.overrides))
    results = {}
    for seed in args.seeds:  # seeds outermost: a cut-short run still has whole seeds
        for rho in args.rhos:
            for schedule in args.schedules:
                config = cell_config(space, schedule, rho, seed, args.threads)
                results[rho, schedule, seed] = out = final_metrics(config)
                print(f"rho {rho} {schedule} seed {seed}: {out}", file=sys.stderr, flush=True)
    print(f"Space `{space.name}` trainer settings + {FIXED}, {args.threads} thread(s).\n")
    print(markdown_table(HEADER, summary_rows(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
