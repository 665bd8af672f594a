"""Slot utilisation of a finished search: how much of the slots' time trials actually ran.

    python -m benchmarks.orchestration experiments/<name> [--wall-s S]

utilisation = sum of per-trial running time / (slots x wall time), where a trial's running time
is Ray's `time_total_s` (setup, epochs and evaluation inside the trainable), slots =
`max_concurrent` (capped by the CPUs the trials could get), and the wall time runs from the
first trial's start to the last trial's end; with `--wall-s` (the whole command, e.g. from
`time make search`) Ray's start-up and the closing summary count too. A stricter ratio uses
only the timed training steps (`train_latency_s`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

from benchmarks.report import markdown_table, record


def trial_spans(experiment: Path) -> list[dict]:
    spans = []
    for result in sorted(experiment.glob("*/result.json")):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        first, last = rows[0], rows[-1]
        spans.append(
            {
                "start": first["timestamp"] - first["time_this_iter_s"],
                "end": last["timestamp"],
                "running_s": last["time_total_s"],
                "train_s": last["train_latency_s"],
            }
        )
    return spans


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment", type=Path)
    p.add_argument("--wall-s", type=float, default=None, help="whole-command wall time")
    args = p.parse_args(argv)
    space = yaml.safe_load((args.experiment / "space.yaml").read_text())
    cpus = len(os.sched_getaffinity(0))
    slots = min(space["search"]["max_concurrent"], int(cpus // space["resources"]["cpu"]))
    spans = trial_spans(args.experiment)
    trial_wall = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    running = sum(s["running_s"] for s in spans)
    train = sum(s["train_s"] for s in spans)
    rows = [
        [
            "first trial start -> last trial end",
            f"{trial_wall:.0f}",
            f"{running / (slots * trial_wall):.3f}",
            f"{train / (slots * trial_wall):.3f}",
        ]
    ]
    if args.wall_s:
        rows.append(
            [
                "whole command",
                f"{args.wall_s:.0f}",
                f"{running / (slots * args.wall_s):.3f}",
                f"{train / (slots * args.wall_s):.3f}",
            ]
        )
    body = (
        f"Experiment `{args.experiment.name}`: {len(spans)} trials, {slots} slots, "
        f"trials ran {running:.0f} s in all, of which {train:.0f} s were timed training "
        "steps. Target: utilisation >= 0.9.\n\n"
        + markdown_table(
            ["wall time", "seconds", "utilisation (running)", "utilisation (training steps only)"],
            rows,
        )
    )
    record("orchestration", "Search slot utilisation", body)


if __name__ == "__main__":
    main()
