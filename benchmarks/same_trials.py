"""Whether two searches ran the same trials with the same results, timings aside.

    python -m benchmarks.same_trials BEFORE/trials.parquet AFTER/trials.parquet

For a refactoring that must not change behaviour: the default search run before and after it
(same space, same seeds) must agree on every trial's settings, role, epochs, accuracies and
losses. Rows are matched by what identifies a trial across runs (role, pipeline, seed,
configuration), not by Ray's trial ids, which are new each run. Left out of the comparison:
what measures time or names the machine (`TIMING` and `MACHINE` below).

Prints a table of the columns compared and the rows that differ; exits 0 when none differs,
1 otherwise, 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

KEY = ["role", "pipeline", "seed", "config_id"]
# Seconds measured while the trial ran (and what follows from them): differ run to run.
TIMING = ("train_latency_s", "calibrated_latency_s", "images_per_s", "compute_s")
# Where it ran and under which id: a property of the run, not of the trial.
MACHINE = ("trial_id", "node_id", "node_type", "gpu_ids", "gpu_mem_peak_gb", "data_cache")


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """The table without timings and machine names, one row per trial in a stable order."""
    kept = table.drop(columns=[c for c in (*TIMING, *MACHINE) if c in table.columns])
    kept = kept.map(lambda v: tuple(v) if hasattr(v, "__len__") and not isinstance(v, str) else v)
    return kept.sort_values(KEY, kind="stable").reset_index(drop=True)


def same(x: object, y: object) -> bool:
    """Equal values, or both missing (NaN, None)."""
    if isinstance(x, tuple) or isinstance(y, tuple):
        return x == y
    return bool(x == y) or bool(pd.isna(x) and pd.isna(y))


def differences(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """One line per difference: a column one side lacks, a row count, or a differing value."""
    a, b = comparable(before), comparable(after)
    out = [f"column {c!r} only in {side}" for side, x, y in (("before", a, b), ("after", b, a))
           for c in x.columns if c not in y.columns]  # fmt: skip
    if len(a) != len(b):
        return [*out, f"{len(a)} trials before, {len(b)} after"]
    for column in [c for c in a.columns if c in b.columns]:
        for i, (x, y) in enumerate(zip(a[column], b[column], strict=True)):
            if not same(x, y):
                key = ", ".join(f"{k}={a.at[i, k]}" for k in KEY)
                out.append(f"{key}: {column} {x!r} before, {y!r} after")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    try:
        before, after = pd.read_parquet(args.before), pd.read_parquet(args.after)
    except (OSError, ValueError) as e:
        print(f"same_trials: {e}", file=sys.stderr)
        return 2
    left_out = [c for c in (*TIMING, *MACHINE) if c in before.columns]
    compared = list(comparable(before).columns)
    print("| trials | columns compared | left out |\n| --- | --- | --- |")
    print(f"| {len(before)} / {len(after)} | {len(compared)} | {', '.join(left_out)} |")
    found = differences(before, after)
    for line in found:
        print(line)
    print("identical" if not found else f"{len(found)} difference(s)")
    return 0 if not found else 1


if __name__ == "__main__":
    raise SystemExit(main())
