"""What offline W&B logging costs a search: `--wandb offline` against `--wandb disabled`.

    python -m benchmarks.wandb_overhead                 # 2 rounds, 4 sampled trials each
    python -m benchmarks.wandb_overhead --rounds 3 --num-samples 6

Runs `tune-app search --space vit_mix.yaml` as a subprocess, the two modes alternating within
each round (the order flips every round so a drift in machine load falls on both), each in a
fresh temporary storage folder, with the baselines and the confirmation phase off so sampled
trials are most of the run. Per run it records the whole command's wall time, the trials'
summed `compute_s` (their own training time: what a logging actor takes from them shows here)
and the 1-minute load average at the end. The overhead is the median wall time offline over
the median disabled, minus one (the issue's bar: 3%). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.report import markdown_table, record

MODES = ("disabled", "offline")


def one_search(mode: str, num_samples: int, overrides: list[str], log: Path) -> dict:
    """Run one search; its wall seconds, the trials' summed compute_s and the load after."""
    with tempfile.TemporaryDirectory(prefix=f"wandb-overhead-{mode}-") as storage:
        cmd = [
            sys.executable, "-m", "tune_app.cli", "search", "--space", "vit_mix.yaml",
            "--storage-path", storage, "--name", f"overhead-{mode}", "--wandb", mode,
            "--set", f"search.num_samples={num_samples}", "--set", "baselines.pipelines=[]",
            "--set", "search.confirm=null",
            *(a for o in overrides for a in ("--set", o)),
        ]  # fmt: skip
        env = {**os.environ, "WANDB_SILENT": "true"}
        start = time.perf_counter()
        with log.open("a") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        wall = time.perf_counter() - start
        if rc != 0:
            raise SystemExit(f"search ({mode}) exited {rc}; its output is in {log}")
        table = pd.read_parquet(Path(storage) / f"overhead-{mode}" / "trials.parquet")
        return {
            "wall": wall,
            "compute": float(table["compute_s"].sum()),
            "trials": len(table),
            "load": os.getloadavg()[0],
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2, help="runs per mode (alternating)")
    p.add_argument("--num-samples", type=int, default=4, help="sampled trials per search")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="extra --set for every search, e.g. trainer.epochs_ssl=2")  # fmt: skip
    p.add_argument("--log", type=Path, default=Path("wandb_overhead.log"),
                   help="where the searches' own output goes")  # fmt: skip
    args = p.parse_args(argv)
    if args.rounds < 1 or args.num_samples < 1:
        p.error("--rounds and --num-samples must be at least 1")  # exit code 2
    rows, runs = [], {m: [] for m in MODES}
    for i in range(args.rounds):
        order = MODES if i % 2 == 0 else MODES[::-1]
        for mode in order:
            r = one_search(mode, args.num_samples, args.overrides, args.log)
            runs[mode].append(r)
            row = [i + 1, mode, f"{r['wall']:.1f}", f"{r['compute']:.1f}", r["trials"],
                   f"{r['load']:.2f}"]  # fmt: skip
            rows.append(row)
            print(row, flush=True)
    med = {m: {k: statistics.median(r[k] for r in runs[m]) for k in ("wall", "compute")}
           for m in MODES}  # fmt: skip
    wall_pct = 100 * (med["offline"]["wall"] / med["disabled"]["wall"] - 1)
    compute_pct = 100 * (med["offline"]["compute"] / med["disabled"]["compute"] - 1)
    extra = "".join(f", {o}" for o in args.overrides)
    body = (
        f"`tune-app search --space vit_mix.yaml` with {args.num_samples} sampled trials, no "
        f"baselines, no confirmation phase{extra}"
        f"; the two modes alternate, {args.rounds} run(s) each.\n\n"
        + markdown_table(
            ["round", "--wandb", "wall s", "trials' compute_s", "trials", "load (1 min)"], rows
        )
        + f"\n\nMedians: wall {med['offline']['wall']:.1f} s offline, "
        f"{med['disabled']['wall']:.1f} s disabled (**offline costs {wall_pct:+.1f}% of wall "
        f"time**; bar: 3%); trials' compute_s {med['offline']['compute']:.1f} s against "
        f"{med['disabled']['compute']:.1f} s ({compute_pct:+.1f}%)."
    )
    record("wandb-overhead-quiet", "W&B logging overhead, measured alternating", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
