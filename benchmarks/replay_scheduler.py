"""Replay recorded searches through `search.scheduler: pareto_halving` offline.

For each experiment folder and each (grace, eta) setting, every per-epoch result in the trials'
result.json files is fed, in the order of its recorded timestamp, to the same `ParetoHalving`
a search would use. Reports per setting:
- saved: the share of the search's trial seconds (`time_total_s`) after the epoch each stopped
  trial would have been stopped at;
- recall: the share of the true final front (complete MixTraining trials, as recorded) that the
  scheduler would have let finish.

It assumes the recorded arrival order: a real run with stopping would start later trials sooner,
and (with a model-based sampler) would sample them differently.

    PYTHONPATH=. .venv/bin/python benchmarks/replay_scheduler.py /work/ref/ref-default
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from analysis.pareto import pareto_mask
from search_spaces import SearchSpace, load_space
from tune_app.scheduler import ParetoHalving

SETTINGS = [(1, 2), (1, 3), (1, 4), (2, 2), (2, 3)]  # (grace, eta)


def load_results(experiment: Path) -> dict[str, list[dict]]:
    """Trial id -> its per-epoch results, from every `<trial>/result.json`."""
    out = {}
    for path in sorted(experiment.glob("*/result.json")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            out[path.parent.name] = rows
    return out


def true_front(space: SearchSpace, trials: dict[str, list[dict]]) -> set[str]:
    """MixTraining trials that ran every planned epoch and are non-dominated at their end."""
    metrics = [o.metric for o in space.objectives]
    done = {
        tid: rows[-1]
        for tid, rows in trials.items()
        if rows[-1]["config"].get("pipeline", "mixtraining") == "mixtraining"
        and rows[-1]["epoch"] == rows[-1]["epochs_planned"]
    }
    ids = list(done)
    values = np.array([[done[t][m] for m in metrics] for t in ids], dtype=float)
    mask = pareto_mask(values, [o.goal for o in space.objectives])
    return {t for t, on in zip(ids, mask, strict=True) if on}


def replay(space: SearchSpace, trials: dict[str, list[dict]], grace: int, eta: float) -> dict:
    """Stops, saved share and front recall of one setting on one recorded search."""
    sched = ParetoHalving(space, grace=grace, eta=eta)
    events = sorted(
        (row["timestamp"], row["epoch"], tid, row) for tid, rows in trials.items() for row in rows
    )
    stopped_at: dict[str, dict] = {}
    for _, _, tid, row in events:
        if tid in stopped_at:
            continue
        trial = SimpleNamespace(trial_id=tid, config=row["config"], last_result={})
        if sched.on_trial_result(None, trial, row) == "STOP":
            stopped_at[tid] = row
    total = sum(rows[-1]["time_total_s"] for rows in trials.values())
    saved = sum(trials[t][-1]["time_total_s"] - r["time_total_s"] for t, r in stopped_at.items())
    front = true_front(space, trials)
    kept = front - set(stopped_at)
    return {
        "stopped": len(stopped_at),
        "saved": saved / total if total else 0.0,
        "recall": len(kept) / len(front) if front else float("nan"),
        "front": len(front),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", type=Path, help="experiment folders")
    args = parser.parse_args(argv)
    print("experiment | trials | grace | eta | stopped | saved | front recall")
    for experiment in args.experiments:
        space = load_space(str(experiment / "space.yaml"))
        trials = load_results(experiment)
        for grace, eta in SETTINGS:
            r = replay(space, trials, grace, eta)
            print(
                f"{experiment.name} | {len(trials)} | {grace} | {eta} | {r['stopped']} | "
                f"{r['saved']:.0%} | {r['recall']:.2f} of {r['front']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
