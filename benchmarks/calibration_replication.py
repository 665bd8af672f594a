"""Does the step-cost calibration replicate when the machine is busy?

Calibrates the space's step costs (`trainers.calibrate.calibrate`, exactly as a search does
before its first trial: one trial's settings, one thread) several times, alternating what else
runs on the machine:
- `alone`: nothing started by this script;
- `busy_loop`: one core kept busy by an unrelated CPU-bound process (a Python busy loop);
- `torch_neighbour`: one core kept busy by a memory-hungry process (single-thread float32
  matrix products on 8 MB operands), which shares the cache and memory bus;
- `oversubscribed`: three busy loops, so the calibration shares the 2 cores with three others;
each timed with the clock calibration uses (`step_clock`: thread CPU time for a one-thread CPU
step) and with the wall clock. Prints every table, then per condition and clock the largest
difference of any step kind from `alone` (a configuration's calibrated latency is a weighted
mean of its kinds' costs, so no configuration differs by more than its worst kind).

    PYTHONPATH=. .venv/bin/python -m benchmarks.calibration_replication [--space vit_mix.yaml]
        [--rounds 2] [--conditions alone busy_loop ...]

Run it on an otherwise idle machine: `alone` must mean alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from search_spaces import load_space
from trainers.calibrate import calibrate
from tune_app.calibration import calibration_config, space_step_kinds
from tune_app.suggestion import fixed_settings

BUSY = "while True: pass"
TORCH = (
    "import torch\ntorch.set_num_threads(1)\na = torch.randn(1448, 1448)\n"
    "while True:\n    a = torch.tanh(a @ a / 1448)"
)
NEIGHBOURS: dict[str, list[str]] = {
    "alone": [],
    "busy_loop": [BUSY],
    "torch_neighbour": [TORCH],
    "oversubscribed": [BUSY, BUSY, BUSY],
}


@contextmanager
def neighbour(codes: list[str]) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", code]) for code in codes]
    if procs:
        time.sleep(2.0)  # started and spinning before the first timed step
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="vit_mix.yaml")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conditions", nargs="+", choices=list(NEIGHBOURS), default=None)
    args = parser.parse_args()
    conditions = {c: NEIGHBOURS[c] for c in args.conditions or NEIGHBOURS}
    space = load_space(args.space)
    config, kinds = calibration_config(fixed_settings(space)), sorted(space_step_kinds(space))
    tables: dict[tuple[str, str], list[dict[str, float]]] = {}
    print(f"| round | condition | clock | others_busy_cpus | {' | '.join(kinds)} |")
    print("|" + " --- |" * (4 + len(kinds)))
    for r in range(args.rounds):
        for cond, code in conditions.items():
            for wall in (False, True):
                with neighbour(code):
                    cal = calibrate(config, kinds, wall_clock=wall)
                clock = cal.settings["clock"]
                tables.setdefault((cond, clock), []).append(cal.table)
                cells = " | ".join(f"{cal.table[k]:.4f}" for k in kinds)
                busy = cal.settings["others_busy_cpus"]
                print(f"| {r + 1} | {cond} | {clock} | {busy} | {cells} |", flush=True)
    print("\nMedian over rounds, and the largest difference of a kind from `alone`:\n")
    print(f"| condition | clock | {' | '.join(kinds)} | worst kind vs alone |")
    print("|" + " --- |" * (3 + len(kinds)))
    for (cond, clock), runs in tables.items():
        med = {k: statistics.median(t[k] for t in runs) for k in kinds}
        base = {k: statistics.median(t[k] for t in tables[("alone", clock)]) for k in kinds}
        worst = max(abs(med[k] - base[k]) / base[k] for k in kinds)
        cells = " | ".join(f"{med[k]:.4f}" for k in kinds)
        print(f"| {cond} | {clock} | {cells} | {100 * worst:.1f}% |")


if __name__ == "__main__":
    main()
