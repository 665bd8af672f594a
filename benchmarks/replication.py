"""Does a search's verdict replicate? Compare two runs of the same search.

Two experiments of the same space and seeds (for example one run alone, one with a core kept
busy by an unrelated process) should reach the same verdict: the cost objective
`calibrated_latency_s` is load-independent and accuracy is deterministic for a fixed seed.
Prints, per configuration (`config_id`), both runs' calibrated and measured latency, and then
whether the confirmed claims, the front's configurations and the knee agree. Each experiment
must have been analysed first (`tune-app analyze EXP`, which writes `analysis/summary.json`).

    PYTHONPATH=. .venv/bin/python -m benchmarks.replication EXP_A EXP_B [--tolerance 0.05]

Exit code 0 when everything agrees within the tolerance, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

TOLERANCE = 0.05  # calibrated latencies of one configuration must agree within 5%


def per_config(trials: pd.DataFrame) -> pd.DataFrame:
    """Complete trials grouped by configuration: role, pipeline, seeds and latency means."""
    done = trials[trials["complete"].astype(bool)]
    return done.groupby("config_id").agg(
        pipeline=("pipeline", "first"),
        role=("role", lambda r: "+".join(sorted(set(r)))),
        seeds=("seed", "count"),
        calibrated=("calibrated_latency_s", "mean"),
        measured=("train_latency_s", "mean"),
        accuracy=("val_accuracy", "mean"),
    )


def verdict_sets(summary: dict[str, Any]) -> dict[str, Any]:
    """The verdict's configuration-level answers: claims, front and knee."""
    configs = (summary.get("verdict") or {}).get("configurations", [])
    return {
        "claims vs SSL+SL": sorted(summary["confirmed_dominance"]["ssl_sl"]),
        "claims vs SL": sorted(summary["confirmed_dominance"]["sl"]),
        "front": sorted(c["config_id"] for c in configs if c.get("on_front")),
        "knee": sorted(c["config_id"] for c in configs if c.get("knee")),
    }


def compare(a: pd.DataFrame, b: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """One row per configuration in both runs, with the relative calibrated difference."""
    both = a.add_suffix("_a").join(b.add_suffix("_b"), how="outer")
    both["calibrated_diff"] = (both["calibrated_b"] - both["calibrated_a"]).abs() / both[
        "calibrated_a"
    ]
    both["within"] = both["calibrated_diff"] <= tolerance
    return both


def table(both: pd.DataFrame) -> list[str]:
    head = (
        "| config_id | pipeline | role | seeds | calibrated A s | calibrated B s | diff | "
        "measured A s | measured B s | accuracy A | accuracy B |"
    )
    lines = [head, "|" + " --- |" * 11]
    for cid, r in both.sort_values(["pipeline_a", "calibrated_a"]).iterrows():
        lines.append(
            f"| `{cid}` | {r['pipeline_a']} | {r['role_a']} | {r['seeds_a']:.0f} | "
            f"{r['calibrated_a']:.2f} | {r['calibrated_b']:.2f} | "
            f"{100 * r['calibrated_diff']:.2f}% | "
            f"{r['measured_a']:.1f} | {r['measured_b']:.1f} | {r['accuracy_a']:.4f} | "
            f"{r['accuracy_b']:.4f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = parser.parse_args(argv)
    runs = [args.a, args.b]
    for run in runs:
        for need in ("trials.parquet", "analysis/summary.json"):
            if not (run / need).is_file():
                print(f"{run}: no {need} (a finished search, then `tune-app analyze {run}`)",
                      file=sys.stderr)  # fmt: skip
                return 2
    configs = [per_config(pd.read_parquet(p / "trials.parquet")) for p in runs]
    summaries = [json.loads((p / "analysis" / "summary.json").read_text()) for p in runs]
    both = compare(configs[0], configs[1], tolerance=args.tolerance)
    print("\n".join(table(both)))
    ok = bool(both["within"].all())
    print(
        f"\ncalibrated_latency_s within {100 * args.tolerance:.0f}%: "
        f"{int(both['within'].sum())} of {len(both)} configurations; largest difference "
        f"{100 * both['calibrated_diff'].max():.2f}%"
    )
    ratio = both["measured_b"] / both["measured_a"]
    print(f"measured train_latency_s, B / A: median {ratio.median():.2f} "
          f"(min {ratio.min():.2f}, max {ratio.max():.2f})")  # fmt: skip
    sets = [verdict_sets(s) for s in summaries]
    for key in sets[0]:
        same = sets[0][key] == sets[1][key]
        ok &= same
        print(f"{key}: {'same' if same else 'DIFFERENT'} (A {sets[0][key]}, B {sets[1][key]})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
