"""Which CPU regime makes the default job's question live: SL, SSL+SL and MixTraining per regime.

    python -m benchmarks.regimes --results benchmarks/results/regimes.json
    python -m benchmarks.regimes --results benchmarks/results/regimes.json --no-run   # table only

A regime is the earlier default space's trainer settings (vit_micro, Fashion-MNIST, 10% labels,
batch 64, its learning rates) with a data and epoch budget changed: where SSL takes its images
(`ssl_source`), how many of the unlabelled ones (`unlabeled_fraction`), the share of labelled
images (`labeled_fraction`) and the epochs. Each
regime runs SL, SSL+SL and one MixTraining setting (the paper's default knobs: rho, alpha and lam
0.5, no annealing) on seeds 0, 1, 2, one torch thread per run (what a search trial gets), two
runs at a time on two workers. It prints, per regime, the mean +- sd of validation and test
accuracy, the SSL+SL minus SL gap with its Welch p-value (two-sided, unequal variances), and
what a whole default search would spend in it:

- under `ssl_schedule: budget` the SSL phase is paid once per seed (the SSL+SL baselines):
  every MixTraining trial takes its SSL prefix from its seed's baseline, so it trains only its
  MIX and SL epochs (under `phase`, as in `same 4+4`, each trial pays its own SSL epochs; the
  little a search reuses there is not counted);
- a default search is 3 SL + 3 SSL+SL baselines and 18 MixTraining trials (12 sampled, 3
  configurations x 2 confirm seeds), each priced at the measured MixTraining run's MIX + SL
  seconds (rho 0.5 is the middle of the searched range).

Results are saved after every run (`--results`), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from scipy import stats

from benchmarks.report import markdown_table

# The trainer settings of the default space before this benchmark chose a new one
# (`search_spaces/vit_mix_same.yaml`), one thread per run.
BASE: dict[str, Any] = {
    "model": "vit_micro",
    "dataset": "fashion_mnist",
    "labeled_fraction": 0.1,
    "batch_size": 64,
    "lr_ssl": 1.5e-3,
    "lr_sl": 5e-3,
    "num_threads": 1,
}
SEMI = {"ssl_source": "all", "ssl_schedule": "budget"}
REGIMES: dict[str, dict[str, Any]] = {
    "same 4+4": {"ssl_source": "same", "epochs_ssl": 4, "epochs_sl": 4},
    "all 25% 4+4": {**SEMI, "unlabeled_fraction": 0.25, "epochs_ssl": 4, "epochs_sl": 4},
    "all 50% 4+4": {**SEMI, "unlabeled_fraction": 0.5, "epochs_ssl": 4, "epochs_sl": 4},
    "all 100% 4+4": {**SEMI, "unlabeled_fraction": 1.0, "epochs_ssl": 4, "epochs_sl": 4},
    # 5% labels: half the supervised steps per epoch, the same SSL images
    "5% labels, all 25% 4+4": {
        **SEMI,
        "labeled_fraction": 0.05,
        "unlabeled_fraction": 0.25,
        "epochs_ssl": 4,
        "epochs_sl": 4,
    },
    "5% labels, all 50% 4+4": {
        **SEMI,
        "labeled_fraction": 0.05,
        "unlabeled_fraction": 0.5,
        "epochs_ssl": 4,
        "epochs_sl": 4,
    },
    "5% labels, all 100% 4+4": {
        **SEMI,
        "labeled_fraction": 0.05,
        "unlabeled_fraction": 1.0,
        "epochs_ssl": 4,
        "epochs_sl": 4,
    },
}
# The order runs are started in (after the costliest-first sort): the likeliest defaults first.
PRIORITY = (
    "all 25% 4+4",
    "5% labels, all 100% 4+4",
    "5% labels, all 50% 4+4",
    "5% labels, all 25% 4+4",
    "same 4+4",
    "all 50% 4+4",
)
# Settings an SL run never reads: SL runs that differ only in these train identically (checked:
# the SL rows of every regime with one labelled share are equal to the last digit), so the
# first one recorded stands for the others.
SSL_ONLY = ("ssl_source", "unlabeled_fraction", "ssl_schedule")
MIX_KNOBS = {"rho": 0.5, "alpha": 0.5, "lam": 0.5, "anneal": "none"}
PIPELINES = ("sl", "ssl_sl", "mixtraining")
# A default search: 3 + 3 baseline trials, 12 sampled and 3 x 2 confirm MixTraining trials.
SEARCH_MIX_TRIALS = 18
# The recorded 24-trial default search: 803 s of wall clock for 997.3 s of trial compute
# (docs/benchmarks.md), i.e. two slots with their validation and start-up overheads.
WALL_PER_COMPUTE = 803 / 997.3


def settings(regime: str, pipeline: str, seed: int) -> dict[str, Any]:
    knobs = MIX_KNOBS if pipeline == "mixtraining" else {}
    return {**BASE, **REGIMES[regime], **knobs, "pipeline": pipeline, "seed": seed}


def train(values: dict[str, Any]) -> dict[str, Any]:
    """Train one run (in a worker process); accuracies and seconds per phase."""
    from trainers import TrialConfig, run

    phase_s: dict[str, float] = {}
    last = [0.0]

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        spent = metrics["train_latency_s"] - last[0]
        last[0] = metrics["train_latency_s"]
        phase_s[metrics["phase"]] = phase_s.get(metrics["phase"], 0.0) + spent

    started = time.perf_counter()
    final = run(TrialConfig.from_dict(values), report)
    return {
        "val_accuracy": final["val_accuracy"],
        "test_accuracy": final["test_accuracy"],
        "train_latency_s": final["train_latency_s"],
        "phase_s": phase_s,
        "wall_s": time.perf_counter() - started,
    }


def load(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"runs": {}, "meta": {}}


def run_missing(path: Path, doc: dict[str, Any], todo: list[tuple[str, str, int]]) -> None:
    """Train every planned run not in `doc` on two workers, saving after each one."""
    from benchmarks.paper_tables import commit, save, stamp

    doc["meta"].update(
        command="python " + shlex.join(["-m", "benchmarks.regimes", *sys.argv[1:]]),
        commit=commit(),
    )
    doc["meta"].setdefault("started", stamp())
    missing = [t for t in todo if "/".join(map(str, t)) not in doc["runs"]]
    later: list[tuple[str, str]] = []  # (an SL run, the planned one that trains as it does)
    first: dict[str, str] = {}
    for t in [t for t in missing if t[1] == "sl"]:
        name, same = "/".join(map(str, t)), twin(doc, *t)
        if same is not None:
            doc["runs"][name] = {**doc["runs"][same], "same_as": same}
            missing.remove(t)
            continue
        key = json.dumps(sl_part(settings(*t)), sort_keys=True)
        if key in first:
            later.append((name, first[key]))
            missing.remove(t)
        else:
            first[key] = name
    # The likeliest defaults first; inside a regime the costly runs first.
    rank = {r: PRIORITY.index(r) if r in PRIORITY else len(PRIORITY) for r in REGIMES}
    missing.sort(key=lambda t: (rank[t[0]], t[1] == "sl"))
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = {pool.submit(train, settings(*t)): t for t in missing}
        for done, future in enumerate(cf.as_completed(futures), 1):
            regime, pipeline, seed = futures[future]
            out = future.result()
            doc["runs"][f"{regime}/{pipeline}/{seed}"] = out
            doc["meta"]["updated"] = stamp()
            save(path, doc)
            print(
                f"[{done}/{len(missing)}] {regime} {pipeline} seed {seed}: test "
                f"{out['test_accuracy']:.4f} val {out['val_accuracy']:.4f} "
                f"({out['train_latency_s']:.0f} s training, {out['wall_s']:.0f} s wall)",
                flush=True,
            )
    for name, same in later:
        doc["runs"][name] = {**doc["runs"][same], "same_as": same}
    doc["meta"]["finished"] = stamp()
    save(path, doc)


def sl_part(values: dict[str, Any]) -> dict[str, Any]:
    """The settings an SL run reads."""
    return {k: v for k, v in values.items() if k not in SSL_ONLY}


def twin(doc: dict[str, Any], regime: str, pipeline: str, seed: int) -> str | None:
    """A recorded SL run that trains exactly as this one (it differs only in `SSL_ONLY`)."""
    mine = sl_part(settings(regime, pipeline, seed))
    for name, run in doc["runs"].items():
        other, pipe, other_seed = name.rsplit("/", 2)
        if "same_as" in run or pipe != "sl" or other not in REGIMES:
            continue
        if sl_part(settings(other, pipe, int(other_seed))) == mine:
            return name
    return None


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.1f} ± {100 * sd:.1f}"


def gap(a: list[float], b: list[float]) -> str:
    """`mean(a) - mean(b)` in points, with Welch's two-sided p."""
    diff = 100 * (statistics.fmean(a) - statistics.fmean(b))
    if len(a) < 2 or len(b) < 2:
        return f"{diff:+.1f}"
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return f"{diff:+.1f} (p {p:.2g})"


def table(doc: dict[str, Any], seeds: list[int]) -> str:
    rows = []
    for regime in REGIMES:
        runs = {
            pipe: [doc["runs"].get(f"{regime}/{pipe}/{s}") for s in seeds] for pipe in PIPELINES
        }
        if any(r is None for rs in runs.values() for r in rs):
            continue

        def acc(pipe: str, metric: str, r: dict = runs) -> list[float]:
            return [x[metric] for x in r[pipe]]

        def mean_s(pipe: str, r: dict = runs) -> float:
            return statistics.fmean(x["train_latency_s"] for x in r[pipe])

        shared = REGIMES[regime].get("ssl_schedule") == "budget"  # else each trial pays SSL
        mix_tail = statistics.fmean(
            sum(s for phase, s in x["phase_s"].items() if phase != "ssl" or not shared)
            for x in runs["mixtraining"]
        )
        search_s = 3 * mean_s("sl") + 3 * mean_s("ssl_sl") + SEARCH_MIX_TRIALS * mix_tail
        rows.append(
            [
                regime,
                spread(acc("sl", "test_accuracy")),
                spread(acc("ssl_sl", "test_accuracy")),
                spread(acc("mixtraining", "test_accuracy")),
                gap(acc("ssl_sl", "test_accuracy"), acc("sl", "test_accuracy")),
                gap(acc("ssl_sl", "val_accuracy"), acc("sl", "val_accuracy")),
                gap(acc("mixtraining", "test_accuracy"), acc("sl", "test_accuracy")),
                f"{mean_s('sl'):.0f} / {mean_s('ssl_sl'):.0f} / {mean_s('mixtraining'):.0f}",
                f"{search_s:.0f}",
                f"{search_s * WALL_PER_COMPUTE / 60:.1f}",
            ]
        )
    header = [
        "regime",
        "SL test %",
        "SSL+SL test %",
        "MixTraining test %",
        "SSL+SL - SL test",
        "SSL+SL - SL val",
        "MixTraining - SL test",
        "training s SL / SSL+SL / Mix",
        "search compute s",
        "search wall min (est.)",
    ]
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, type=Path, help="results JSON (read and extended)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    p.add_argument("--no-run", action="store_true", help="only print the table of the results")
    args = p.parse_args(argv)
    doc = load(args.results)
    if not args.no_run:
        todo = [(r, pipe, s) for r in args.regimes for pipe in PIPELINES for s in args.seeds]
        run_missing(args.results, doc, todo)
    print(table(doc, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
